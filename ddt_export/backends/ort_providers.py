"""Which onnxruntime execution providers run a build: CPU, CUDA, or TensorRT (onnxruntime-gpu users).

`DDT_ORT_PROVIDERS` picks them in priority order, e.g. `tensorrt,cuda,cpu`; unset, CUDA is
used where onnxruntime-gpu has it, else the CPU. The TensorRT provider gets no precision
flag: an fp16 build's graph already says which ops are fp16 and which stay fp32. Its engines
and timing cache are kept in the user's cache folder, beside the TensorRT backend's.
"""

from __future__ import annotations

import os

from ..errors import DDTError
from .tensorrt.engines import OPT_LEVEL, cache_dir

ENV = "DDT_ORT_PROVIDERS"
NAMES = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}


def tensorrt_options() -> dict:
    path = str(cache_dir() / "onnxruntime-trt")  # beside the TensorRT backend's timing caches
    return {
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": path,
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": path,
        "trt_builder_optimization_level": OPT_LEVEL,  # as the TensorRT backend's engines (TensorRT's default)
    }


def providers(spec: str | None = None) -> list:
    """onnxruntime's `providers` list from `spec` (default: $DDT_ORT_PROVIDERS; else CUDA if present, then CPU)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    spec = os.environ.get(ENV) if spec is None else spec
    if not spec:
        return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    out = []
    for short in (s.strip().lower() for s in spec.split(",") if s.strip()):
        if short not in NAMES:
            raise DDTError(f"{ENV}: unknown provider {short!r}; use a comma-separated list of {', '.join(NAMES)}")
        full = NAMES[short]
        if full not in available:
            hint = "pip install onnxruntime-gpu (and TensorRT for the tensorrt provider)" if short != "cpu" else "reinstall onnxruntime"
            raise DDTError(f"{ENV} asks for {short}, but this onnxruntime has only {', '.join(available)}; {hint}")
        out.append((full, tensorrt_options()) if short == "tensorrt" else full)
    return out
