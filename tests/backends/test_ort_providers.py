"""onnxruntime's execution providers (CPU, CUDA, TensorRT) as options: $DDT_ORT_PROVIDERS and its one-line errors."""

from __future__ import annotations

import pytest

from ddt_export.backends.ort_providers import providers, tensorrt_options
from ddt_export.errors import DDTError
from ddt_export.manifest import read


def test_onnxruntime_providers_from_the_environment(monkeypatch):
    monkeypatch.delenv("DDT_ORT_PROVIDERS", raising=False)
    assert providers()[-1] == "CPUExecutionProvider"
    assert providers("cpu") == ["CPUExecutionProvider"]
    with pytest.raises(DDTError, match="unknown provider 'rocm'"):
        providers("rocm,cpu")
    import onnxruntime as ort

    if "TensorrtExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(DDTError, match="asks for tensorrt.*onnxruntime-gpu"):
            providers("tensorrt,cuda,cpu")
    opts = tensorrt_options()
    assert opts["trt_engine_cache_enable"] and opts["trt_timing_cache_enable"] and "trt_fp16_enable" not in opts


def test_onnxruntime_backend_honours_the_provider_variable(built, monkeypatch):
    from ddt_export.backends.onnxruntime_backend import OnnxRuntimeBackend

    monkeypatch.setenv("DDT_ORT_PROVIDERS", "cpu")
    be = OnnxRuntimeBackend(read(built))
    assert be.encoder.get_providers() == ["CPUExecutionProvider"]
    monkeypatch.setenv("DDT_ORT_PROVIDERS", "cuda")
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(DDTError, match="DDT_ORT_PROVIDERS asks for cuda"):
            OnnxRuntimeBackend(read(built))
