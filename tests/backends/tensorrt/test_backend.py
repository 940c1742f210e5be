"""The TensorRT backend's refusals on this machine: no engines, no TensorRT, engines from another TensorRT or GPU, options.

Its real work (buffers, bindings, the loop) is exercised against TensorRT's real signatures
in test_bindings_api.py; nothing here needs a GPU.
"""

from __future__ import annotations

import copy
import sys
import types

import pytest

from ddt_export.backends import open_backend, resolve_name
from ddt_export.backends.tensorrt import env
from ddt_export.backends.tensorrt.backend import TensorRTBackend
from ddt_export.errors import DDTError
from ddt_export.manifest import read
from ddt_export.manifest_schema import Engines

ENGINES = {"tensorrt": "10.8.0.43", "gpu": "NVIDIA L4", "compute_capability": "8.9", "precision": "fp32", "max_batch": 4,
           "builder_optimization_level": 3, "cfg_batch": {"min": 1, "opt": 8, "max": 16},
           "files": {"encoder": "encoder.plan", "decoder": "decoder.plan"}}


def with_engines(built):
    m = read(built)
    m = copy.deepcopy(m)
    m.doc.engines = Engines.model_validate(ENGINES)
    return m


def test_a_build_without_engines_says_how_to_make_them(built):
    with pytest.raises(DDTError, match=r"has no TensorRT engines; build them on this GPU machine: ddt-export engines .* --max-batch 4"):
        TensorRTBackend(read(built))


def test_generate_with_tensorrt_here_is_one_line_exit_2(cli, built, monkeypatch, tmp_path):
    r = cli("generate", built, "--backend", "tensorrt", "--labels", "1", "--steps", "2", "--save-latents", tmp_path / "x.npy")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "TensorRT" in r.err


@pytest.mark.skipif(env.missing() is None, reason="TensorRT and a GPU are here")
def test_runtime_refuses_engines_from_another_tensorrt_or_gpu_without_tensorrt_here(built, monkeypatch):
    m = with_engines(built)
    with pytest.raises(DDTError, match="needs TensorRT and an NVIDIA GPU.*pypi.nvidia.com"):
        TensorRTBackend(m)
    # A machine that has TensorRT and a GPU, but not the ones the engines were built for:
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.8.0.43"))
    monkeypatch.setattr(env, "missing", lambda: None)
    monkeypatch.setattr(env.Device, "here", classmethod(lambda cls, index=0: cls("NVIDIA A100", "8.0", "10.8.0.43")))
    with pytest.raises(DDTError) as e:
        TensorRTBackend(m)
    assert "built for compute capability 8.9 (NVIDIA L4), this GPU is 8.0 (NVIDIA A100)" in str(e.value)
    assert f"rebuild them here: ddt-export engines {m.root} --max-batch 4 --opt-level 3" in str(e.value)
    monkeypatch.setattr(env.Device, "here", classmethod(lambda cls, index=0: cls("NVIDIA L4", "8.9", "10.9.0.34")))
    with pytest.raises(DDTError, match=r"built with TensorRT 10.8.0.43, this is TensorRT 10.9.0.34; rebuild them here: ddt-export engines"):
        TensorRTBackend(m)


@pytest.mark.skipif(env.missing() is None, reason="TensorRT and a GPU are here")
def test_auto_picks_onnxruntime_when_engines_exist_but_tensorrt_does_not(built):
    assert resolve_name("auto", with_engines(built)) == "onnxruntime"
    assert resolve_name("auto", read(built)) == "onnxruntime"


def test_options_it_does_not_take_are_refused_before_anything_opens(built):
    """`threads` caps CPU thread pools and `precision` is OpenVINO's: neither means anything to TensorRT engines."""
    m = with_engines(built)
    with pytest.raises(DDTError, match=r"^the tensorrt backend takes no `threads` option \(its options: cuda_graphs: "):
        open_backend("tensorrt", m, threads=2)
    with pytest.raises(DDTError, match="the tensorrt backend takes no `precision` option"):
        open_backend("tensorrt", m, precision="fp32")
    assert TensorRTBackend.OPTIONS.keys() == {"cuda_graphs"}
