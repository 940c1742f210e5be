"""Engine building without TensorRT: polygraphy's loader chain as constructed, and the refusals.

Polygraphy's loaders import without TensorRT and build nothing until called, so the chain
ddt-export hands them (strongly typed network, one profile over the CFG batch, timing cache,
optimisation level, no TF32) is inspected here. test_bindings_api.py then runs the same
chain against TensorRT's real bindings.
"""

from __future__ import annotations

import json

import pytest

from ddt_export.backends.tensorrt import engines as E
from ddt_export.backends.tensorrt.env import INSTALL, Device, missing
from ddt_export.errors import DDTError
from ddt_export.manifest import read

pytestmark = pytest.mark.skipif(missing() is None, reason="TensorRT and a GPU are here: these test the machine without them")


def test_cfg_batch_profile_covers_user_batches_and_calibration():
    # min 1: the conditional half alone (guidance off); calibration runs 8 samples: CFG batch 16
    assert E.cfg_batch_range(4) == {"min": 1, "opt": 8, "max": 16}
    assert E.cfg_batch_range(12) == {"min": 1, "opt": 24, "max": 24}


def test_loader_chain_is_strongly_typed_with_profiles_cache_and_level(built_fp16, tmp_path):
    m = read(built_fp16)
    spec = m.graph("decoder")
    shapes = E.profile_shapes(spec, E.cfg_batch_range(3))
    cache = tmp_path / "timing.cache"
    loader = E.engine_loader(built_fp16 / spec.file, shapes, opt_level=4, timing_cache=cache)

    from polygraphy.backend.trt import CreateConfig, EngineBytesFromNetwork, NetworkFromOnnxPath

    assert isinstance(loader, EngineBytesFromNetwork)
    assert loader.timing_cache_path == str(cache)  # the builder appends what it measured
    network, config = loader._network, loader._config
    assert isinstance(network, NetworkFromOnnxPath) and isinstance(config, CreateConfig)
    assert network.path == str(built_fp16 / "decoder.onnx")
    assert network.strongly_typed is True  # TensorRT keeps the graph's fp16 and its fp32 islands
    assert config.timing_cache_path == str(cache) and config.builder_optimization_level == 4
    assert (config.tf32, config.fp16, config.bf16, config.int8) == (False, False, False, False)  # no precision flags
    (profile,) = config.profiles
    N, D = m.arch.num_tokens, m.arch.hidden_size
    assert list(profile) == ["x", "s"]
    assert (profile["x"].min, profile["x"].opt, profile["x"].max) == ((1, 4, 8, 8), (6, 4, 8, 8), (16, 4, 8, 8))
    assert (profile["s"].min, profile["s"].opt, profile["s"].max) == ((1, N, D), (6, N, D), (16, N, D))


def test_encoder_profile_names_every_input(built_fp16):
    spec = read(built_fp16).graph("encoder")
    shapes = E.profile_shapes(spec, E.cfg_batch_range(1))
    assert shapes == {"x": {"min": [1, 4, 8, 8], "opt": [2, 4, 8, 8], "max": [16, 4, 8, 8]},
                      "t": {"min": [1], "opt": [2], "max": [16]}, "y": {"min": [1], "opt": [2], "max": [16]}}


def test_timing_cache_is_per_tensorrt_version_and_architecture(monkeypatch, tmp_path):
    monkeypatch.setenv("DDT_EXPORT_CACHE", str(tmp_path))
    path = E.timing_cache_path(Device("NVIDIA L4", "8.9", "10.8.0.43"))
    assert path == tmp_path / "tensorrt" / "timing-trt10.8.0.43-sm89.cache"
    monkeypatch.delenv("DDT_EXPORT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert E.cache_dir() == tmp_path / "xdg" / "ddt-export" / "tensorrt"


def test_extra_is_skipped_by_auto_and_refused_by_tensorrt_with_the_install_line():
    assert E.engines_extra(precision="fp16", required=False) is None
    with pytest.raises(DDTError) as e:
        E.engines_extra(precision="fp16", required=True)
    msg = str(e.value)
    assert "\n" not in msg and "not installed" in msg and "https://pypi.nvidia.com" in msg and "ddt-export[tensorrt]" in msg
    with pytest.raises(DDTError, match="--opt-level must be 0 to 5"):
        E.engines_extra(precision="fp16", opt_level=7)
    with pytest.raises(DDTError, match="--max-batch must be >= 1"):
        E.engines_extra(precision="fp16", max_batch=0)


def test_build_with_tensorrt_backend_fails_in_one_line_and_writes_nothing(cli, official, tmp_path):
    out = tmp_path / "engines" / "never"
    r = cli("build", "--config", official.config, "--ckpt", official.ckpt, "--precision", "fp16", "--backend", "tensorrt", "--out", out)
    assert r.code == 2
    assert r.err.startswith("error: --backend tensorrt needs TensorRT and an NVIDIA GPU") and len(r.err.strip().splitlines()) == 1
    assert INSTALL in r.err
    assert not (tmp_path / "engines").exists()  # not even the parent folder


def test_auto_build_says_engines_were_skipped(built_fp16_run):
    folder, output = built_fp16_run
    assert "TensorRT or a GPU is not available here: building the ONNX graphs only, engines skipped" in " ".join(output.split())
    assert read(folder).doc.engines is None


def test_engines_command_without_tensorrt_fails_and_leaves_the_build_alone(cli, built_fp16):
    before = (built_fp16 / "manifest.json").read_text()
    r = cli("engines", built_fp16)
    assert r.code == 2 and "needs TensorRT" in r.err and len(r.err.strip().splitlines()) == 1
    assert (built_fp16 / "manifest.json").read_text() == before
    assert not list(built_fp16.glob("*.plan")) and not (built_fp16 / ".engines.partial").exists()
    assert json.loads(before)["precision"] == "fp16"
