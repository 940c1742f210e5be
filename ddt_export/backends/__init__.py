"""Backends: each turns a build (or a model) into `Runner`s for the one sampling loop.

A backend does the slow part once (load weights, create sessions, build engines); its
`runner(batch)` allocates the buffers for one CFG batch size; the runner's `encode()` and
`decode()` are the fast calls. One small module per backend, imported only when chosen.
"""

from __future__ import annotations

from typing import Protocol

from ..errors import DDTError
from ..manifest import Manifest
from ..sampler import Runner

NAMES = ("torch", "onnxruntime", "openvino", "tensorrt")


class Backend(Protocol):
    name: str
    precision: str  # what its matmuls compute in ("fp32", "bf16", ...): the ceiling a benchmark judges it by

    def runner(self, batch: int) -> Runner: ...


def tensorrt_available() -> bool:
    """TensorRT imports, polygraphy is there and torch sees a CUDA GPU."""
    from .tensorrt.env import missing

    return missing() is None


def resolve_name(name: str, manifest: Manifest | None) -> str:
    """`auto`: TensorRT engines where built and usable, else onnxruntime for a build, else torch."""
    if name != "auto":
        if name not in NAMES:
            raise DDTError(f"unknown backend {name!r}; choose auto, {', '.join(NAMES)}")
        return name
    if manifest is None:
        return "torch"
    if manifest.doc.engines is not None and tensorrt_available():
        return "tensorrt"
    return "onnxruntime"


def open_backend(name: str, manifest: Manifest | None = None, model=None, threads: int | None = None,
                 precision: str | None = None) -> Backend:
    """The named backend for a build folder (or, for torch, an in-memory model); `threads` caps the CPU backends' pools,
    `precision` is OpenVINO's inference precision ("fp32" or "bf16"; default bf16 where the CPU has it), as
    `ddt-run --inference-precision`."""
    name = resolve_name(name, manifest)
    if precision is not None and name != "openvino":
        raise DDTError(f"--precision chooses OpenVINO's inference precision; the {name} backend runs the build's own ({manifest.precision if manifest else 'fp32'})")
    if name == "torch":
        from .torch_backend import TorchBackend

        if threads:
            import torch

            torch.set_num_threads(threads)
        return TorchBackend(model) if model is not None else TorchBackend.from_build(manifest)
    if manifest is None:
        raise DDTError(f"the {name} backend runs a build folder; run `ddt-export build` first or use --backend torch")
    if name == "onnxruntime":
        from .onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(manifest, threads=threads)
    if name == "openvino":
        from .openvino_backend import OpenVinoBackend

        return OpenVinoBackend(manifest, precision=precision, threads=threads)
    from .tensorrt.runner import TensorRTBackend

    return TensorRTBackend(manifest)
