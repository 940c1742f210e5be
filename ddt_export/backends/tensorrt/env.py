"""What TensorRT needs on this machine, and one-line errors that say how to get it.

Nothing here imports TensorRT or touches CUDA at import time: `missing()` is cheap enough
for `--backend auto` to call on any machine.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from ...errors import DDTError

# TensorRT's libraries come from NVIDIA's index (the PyPI packages are stubs that fetch from it).
INSTALL = "pip install --extra-index-url https://pypi.nvidia.com 'ddt-export[tensorrt]' (TensorRT 10+ for CUDA 12; a CUDA build of torch)"


def missing() -> str | None:
    """What this machine lacks for TensorRT engines (one clause), or None when nothing."""
    if importlib.util.find_spec("tensorrt") is None:
        return "the tensorrt package is not installed"
    if importlib.util.find_spec("polygraphy") is None:
        return "polygraphy is not installed"
    import torch

    if not torch.cuda.is_available():
        if torch.version.cuda is None:
            return f"torch {torch.__version__} is a CPU-only build (TensorRT buffers live in CUDA torch tensors)"
        return "no CUDA GPU is visible (torch.cuda.is_available() is False)"
    try:
        import tensorrt  # noqa: F401
    except Exception as e:  # a broken install: missing libnvinfer, CUDA mismatch
        return f"tensorrt does not import ({str(e).splitlines()[0][:160]})"
    return None


def require(what: str, otherwise: str = "") -> None:
    """Raise the one-line error for `what` (e.g. "--backend tensorrt") when TensorRT is unusable here."""
    why = missing()
    if why is not None:
        raise DDTError(f"{what} needs TensorRT and an NVIDIA GPU, but {why}; install with: {INSTALL}{otherwise}")


@dataclass(frozen=True)
class Device:
    """The GPU engines are built for or run on, as the manifest records it, and where a runner's buffers and stream live."""

    name: str
    compute_capability: str  # "8.9"
    tensorrt: str  # TensorRT's version, e.g. "10.8.0.43"
    index: int = 0  # the CUDA device ordinal

    @classmethod
    def here(cls, index: int | None = None) -> "Device":
        """The current CUDA device (or device `index`), with this TensorRT's version."""
        import tensorrt as trt
        import torch

        index = torch.cuda.current_device() if index is None else index
        major, minor = torch.cuda.get_device_capability(index)
        return cls(torch.cuda.get_device_name(index), f"{major}.{minor}", trt.__version__, index)

    @property
    def torch_device(self):
        """The torch device a runner allocates its buffers on."""
        import torch

        return torch.device("cuda", self.index)

    def stream(self):
        """A new CUDA stream on this device for a runner to enqueue on (runner.CudaStream)."""
        from .runner import CudaStream

        return CudaStream(self.torch_device)
