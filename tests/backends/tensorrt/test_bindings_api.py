"""ddt-export's TensorRT code against TensorRT's real Python bindings (10.0, the floor, and 11.4).

The bindings wheel (`tensorrt-cu12-bindings`, ~1.3 MB, PyPI) is downloaded once into
~/.cache/ddt-export-tests and imported over stub libnvinfer (see bindings.py). Then:

- every `trt.X.Y` name the code spells must exist in that TensorRT;
- the engine build (polygraphy's loaders, as ddt-export constructs them) and the TensorRT
  backend (buffers, bindings, execute_async_v3, the sampling loop) run against a stand-in
  whose every call is checked against the real signatures (fake_trt.py); the stand-in's
  "engine" runs the ONNX graph with onnxruntime on the bound host memory, so the latents
  must equal the onnxruntime backend's.

This proves the calls are the right ones for the API; it does not run TensorRT kernels,
CUDA streams or CUDA graphs (no GPU here): docs/tensorrt.md lists what a GPU run must check.
"""

from __future__ import annotations

import shutil

import pytest

from ddt_export.manifest import read
from ddt_export.sampler import cfg_halves, guidance_scales
from tests.backends.tensorrt.bindings import VERSIONS, fetch, run_scenario


@pytest.fixture(scope="module", params=VERSIONS)
def bindings(request):
    got = fetch(request.param)
    if isinstance(got, str):
        pytest.skip(f"TensorRT {request.param} bindings unavailable: {got}")
    return request.param, got


def test_every_trt_name_the_code_uses_exists(bindings):
    version, folder = bindings
    r = run_scenario(folder, "api")
    assert r["version"] == version
    assert r["missing"] == []
    assert {"trt.Runtime", "trt.Logger.WARNING", "trt.TensorIOMode.INPUT", "trt.DataType.HALF"} <= set(r["checked"])


def test_engine_build_and_runtime_make_only_real_tensorrt_calls(bindings, built_fp16, tmp_path):
    version, folder = bindings
    build = tmp_path / "build"
    shutil.copytree(built_fp16, build)
    labels, steps, recompute = [1, 7], 6, [0, 3]
    r = run_scenario(folder, "engines", build=str(build), cache=str(tmp_path / "cache"), max_batch=2, opt_level=2,
                     steps=steps, recompute=recompute, labels=labels, max_batch_profile=8)
    e = r["engines"]
    assert e["tensorrt"] == version and e["precision"] == "fp16" and e["strongly_typed"] and e["builder_optimization_level"] == 2
    assert e["cfg_batch"] == {"min": 1, "opt": 4, "max": 16} and e["files"] == {"encoder": "encoder.plan", "decoder": "decoder.plan"}
    # strongly typed network, TF32 cleared, one profile per engine with every input's min/opt/max, timing cache saved
    assert r["network_flags"] == [r["strongly_typed_bit"]] * 2
    assert r["flags_cleared"] == ["BuilderFlag.TF32"] * 2 and r["flags_set"] == []
    assert ["IBuilderConfig.builder_optimization_level", "2"] in r["sets"]
    assert [p[0] for p in r["profile_shapes"]] == ["x", "t", "y", "x", "s"]
    assert r["profile_shapes"][4] == ["s", [1, 16, 64], [4, 16, 64], [16, 16, 64]]  # min 1: a conditional half alone
    assert r["calls"].count("IBuilderConfig.add_optimization_profile") == 2
    assert r["calls"].count("Builder.build_serialized_network") == 2 and "IBuilderConfig.set_timing_cache" in r["calls"]
    assert r["timing_cache_files"] == [f"timing-trt{version}-sm00.cache"]
    # the runtime: same latents as onnxruntime, s bound once to both engines, encoder only at recompute steps
    run = r["run"]
    assert run["max_abs_diff_vs_onnxruntime"] <= 1e-6 * run["max_abs_want"]
    assert run["state_shared"] and run["x_shared"] and run["s_dtype"] == "torch.float16"
    # guidance-aware batches: the conditional half alone where guidance is off, on contexts bound to row views
    settings = read(build).sampler.with_overrides(num_steps=steps)
    enc_both, dec_both = cfg_halves(guidance_scales(settings), recompute)
    assert 0 < sum(dec_both) < steps  # the run has both kinds of step
    assert run["encoder_executions"] == 2 * sum(enc_both.values()) and run["encoder_half_executions"] == 2 * (len(recompute) - sum(enc_both.values()))
    assert run["decoder_executions"] == 2 * sum(dec_both) and run["decoder_half_executions"] == 2 * (steps - sum(dec_both))
    assert run["half_rows_are_views"] and run["half_shapes"]["decoder.s"] == [2, 16, 64]
    assert run["repeat_identical"] and run["same_runner_reused"]
    assert run["input_shapes"]["decoder.s"] == [4, 16, 64]
    assert "rebuild with a larger batch: ddt-export engines" in r["too_big"]
    assert f"built with TensorRT 9.9.9, this is TensorRT {version}; rebuild them here: ddt-export engines" in r["other_version"]


@pytest.mark.parametrize("precision", ["int8", "fp8"])
def test_qdq_builds_go_through_the_same_engine_build_and_runtime(bindings, precision, built_int8, built_fp8, tmp_path):
    """An int8/fp8 build's QDQ graphs: strongly typed parse (Q/DQ carry the precision), no precision flags, fp32 state."""
    version, folder = bindings
    build = tmp_path / "build"
    shutil.copytree({"int8": built_int8, "fp8": built_fp8}[precision], build)
    labels, steps, recompute = [2, 5], 4, [0, 2]
    r = run_scenario(folder, "engines", build=str(build), cache=str(tmp_path / "cache"), max_batch=2, opt_level=2,
                     steps=steps, recompute=recompute, labels=labels, max_batch_profile=8)
    e = r["engines"]
    assert e["precision"] == precision and e["strongly_typed"]
    assert r["network_flags"] == [r["strongly_typed_bit"]] * 2
    assert r["flags_set"] == []  # no INT8/FP8 builder flags: a strongly typed network takes its precision from Q/DQ
    run = r["run"]
    assert run["s_dtype"] == "torch.float32" and run["state_shared"]
    assert run["max_abs_diff_vs_onnxruntime"] <= 1e-6 * run["max_abs_want"]
    # guidance-aware batches: the conditional half alone where guidance is off, on contexts bound to row views
    settings = read(build).sampler.with_overrides(num_steps=steps)
    enc_both, dec_both = cfg_halves(guidance_scales(settings), recompute)
    assert 0 < sum(dec_both) < steps  # the run has both kinds of step
    assert run["encoder_executions"] == 2 * sum(enc_both.values()) and run["encoder_half_executions"] == 2 * (len(recompute) - sum(enc_both.values()))
    assert run["decoder_executions"] == 2 * sum(dec_both) and run["decoder_half_executions"] == 2 * (steps - sum(dec_both))
    assert run["half_rows_are_views"] and run["half_shapes"]["decoder.s"] == [2, 16, 64]
