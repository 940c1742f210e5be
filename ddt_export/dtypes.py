"""Precisions and element types, one table: what each build precision stores, and each dtype's name per library.

A build's precision decides the graphs' element types: fp16/bf16 graphs are exported from a
cast model (norms, RoPE and t-features stay fp32 by construction), int8/fp8 graphs are fp32
graphs with quantize/dequantize pairs (quant/). Tensor dtypes are spelled as numpy
names everywhere (the manifest, GraphSpec); the maps below turn them into each library's type.
"""

from __future__ import annotations

import numpy as np

# precision -> dtype of the state s between the graphs (it never leaves the device)
STATE_DTYPE = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int8": "float32", "fp8": "float32"}
PRECISIONS = tuple(STATE_DTYPE)
HALF = ("fp16", "bf16")  # exported from a cast model
QUANTIZED = ("int8", "fp8")  # exported in fp32, then quantised to QDQ graphs
# max |onnx - torch| / max |torch| a build accepts, per precision, against the fp32 PyTorch model
TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2, "bf16": 5e-2, "int8": 2e-1, "fp8": 2e-1}

NUMPY = {"float32": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32}
TORCH = ("float32", "float16", "bfloat16", "int64", "int32")  # torch.<name> for each


def check_precision(precision: str) -> str:
    from .errors import DDTError

    if precision not in STATE_DTYPE:
        raise DDTError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision


def state_dtype(precision: str) -> str:
    return STATE_DTYPE[check_precision(precision)]


def torch_dtype(name: str):
    """torch's dtype for a numpy dtype name (torch imported only here, when asked)."""
    import torch

    if name not in TORCH:
        raise KeyError(f"no torch dtype for {name!r}")
    return getattr(torch, name)


def torch_cast(precision: str):
    """The dtype a half-precision build's model is cast to before export (None: exported in fp32)."""
    return torch_dtype(STATE_DTYPE[precision]) if precision in HALF else None
