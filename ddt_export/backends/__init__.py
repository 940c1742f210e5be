"""Backends: each turns a build (or a model) into `Runner`s for the one sampling loop, with the options it declares.

A backend does the slow part once (load weights, create sessions, build engines); its
`runner(batch)` allocates the buffers for one CFG batch size; the runner's `encode()` and
`decode()` are the fast calls. One small module (or package, for TensorRT) per backend,
imported only when chosen. Each backend class declares the options it takes in `OPTIONS`
(name -> what it does); `open_backend` refuses any other in one line.
"""

from __future__ import annotations

import sys
from typing import ClassVar, Protocol

from ..errors import DDTError
from ..manifest import Manifest
from ..sampler import Runner

NAMES = ("torch", "onnxruntime", "openvino", "tensorrt")


class Backend(Protocol):
    name: str
    precision: str  # what its matmuls compute in ("fp32", "bf16", ...): the ceiling a benchmark judges it by
    OPTIONS: ClassVar[dict[str, str]]  # the options open_backend passes it: name -> what it does

    def runner(self, batch: int) -> Runner: ...


def tensorrt_available() -> bool:
    """TensorRT imports, polygraphy is there and torch sees a CUDA GPU."""
    from .tensorrt.env import missing

    return missing() is None


def resolve_name(name: str, manifest: Manifest | None) -> str:
    """`auto`: TensorRT engines where built and usable; else, for an int8 build, the CPU runtime measured faster on this
    host (probe.py); else onnxruntime for a build; else torch."""
    if name != "auto":
        if name not in NAMES:
            raise DDTError(f"unknown backend {name!r}; choose auto, {', '.join(NAMES)}")
        return name
    if manifest is None:
        return "torch"
    if manifest.doc.engines is not None and tensorrt_available():
        return "tensorrt"
    if manifest.precision == "int8":  # the fastest int8 runtime depends on the CPU: measured once per host (probe.py)
        from .probe import fastest, time_calls

        return fastest(manifest, lambda n, m: time_calls(backend_class(n)(m)), say=lambda m: print(m, file=sys.stderr))
    return "onnxruntime"


def backend_class(name: str) -> type:
    """The class of a backend named in NAMES (its module imported now; none of them imports its runtime yet)."""
    if name == "torch":
        from .torch_backend import TorchBackend

        return TorchBackend
    if name == "onnxruntime":
        from .onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend
    if name == "openvino":
        from .openvino_backend import OpenVinoBackend

        return OpenVinoBackend
    from .tensorrt.backend import TensorRTBackend

    return TensorRTBackend


def backend_options(name: str, options: dict) -> dict:
    """The options given to backend `name` (one set to None is not given: the backend's default); one it does not take is refused."""
    declared = backend_class(name).OPTIONS
    given = {k: v for k, v in options.items() if v is not None}
    for option in given:
        if option not in declared:
            takes = "; ".join(f"{k}: {what}" for k, what in declared.items()) or "none"
            raise DDTError(f"the {name} backend takes no `{option}` option (its options: {takes})")
    return given


def open_backend(name: str, manifest: Manifest | None = None, model=None, **options) -> Backend:
    """The named backend for a build folder (or, for torch, an in-memory model), with the options its class declares:
    `threads` caps the CPU backends' (torch, onnxruntime, OpenVINO) thread pools; `precision` is OpenVINO's inference
    precision ("fp32" or "bf16"; default bf16 where the CPU has it, as `ddt-run --inference-precision`); `cuda_graphs`
    TensorRT's CUDA graphs. Any option its backend does not take is refused."""
    name = resolve_name(name, manifest)
    if manifest is None and name != "torch":
        raise DDTError(f"the {name} backend runs a build folder; run `ddt-export build` first or use --backend torch")
    cls, given = backend_class(name), backend_options(name, options)
    if name == "torch" and model is None and manifest.precision != "fp32":  # it would run the fp32 weights, not this build
        raise DDTError(f"{manifest.root} is a {manifest.precision} build; the torch backend runs only its fp32 weights, so its "
                       "samples would not be this build's. Use --backend onnxruntime or openvino (or an fp32 build for torch)")
    if name == "torch":
        return cls(model, **given) if model is not None else cls.from_build(manifest, **given)
    return cls(manifest, **given)
