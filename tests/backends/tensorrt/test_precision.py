"""FP16 survives: the fp16 graphs against fp32 over whole sampling runs and at the worst-case t.

Run through onnxruntime on the CPU (its fp16 kernels; where it has none it computes in fp32
and rounds to fp16 per node, as GPU kernels accumulate). TensorRT's own fp16 kernels are
not run here: see docs/tensorrt.md for what remains to be verified on a GPU.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from ddt_export.pipeline import Pipeline, seeded_noise
from ddt_export.precision.half import cpu_session, emulate_half, islands
from ddt_export.precision.report import WORST_T, check
from tests.conftest import SAMPLER
from tests.reference.official_ddt import official_sample

FP16_TOLERANCE = 2e-2  # relative: max |fp16 - fp32| / max |fp32|, over a whole sampling run


@pytest.fixture(scope="module")
def report(built_fp16, built):
    return check(built_fp16, built, steps=SAMPLER["num_steps"], batch=2)


def test_fp16_build_stays_within_2e_2_of_fp32_over_a_whole_run(report):
    run = report["sampling_run"]
    assert run["finite"] and run["nonfinite_values_seen"] == 0
    assert run["max_rel_error"] < FP16_TOLERANCE, run
    assert run["steps"] == SAMPLER["num_steps"] and run["guidance"] == SAMPLER["guidance"]


def test_fp16_graphs_are_finite_and_close_at_t_near_0_and_1(report):
    assert [row["t"] for row in report["per_t"]] == list(WORST_T)
    for row in report["per_t"]:
        for name in ("encoder", "decoder", "encoder+decoder"):
            e = row[name]
            assert e["finite"], (row["t"], name)
            assert e["max_rel_error"] < FP16_TOLERANCE, (row["t"], name, e)


def test_fp16_whole_run_matches_the_official_implementation(built_fp16, official):
    """Independent: the oracle transcribes the official code (fp32, complex RoPE, F.fold), not ours."""
    labels, steps = [3, 7], [0, 4, 8]
    noise = seeded_noise(len(labels), (4, 8, 8), 5)
    got = Pipeline.load(built_fp16, "onnxruntime").generate(labels, noise=noise, recompute=steps).latents
    want = official_sample(official.ema, torch.from_numpy(noise), torch.tensor(labels), 10, SAMPLER["num_steps"], SAMPLER["guidance"],
                           SAMPLER["interval_min"], SAMPLER["interval_max"], SAMPLER["timeshift"], SAMPLER["last_step"], recompute=steps).numpy()
    assert np.isfinite(got).all()
    assert np.abs(got - want).max() / np.abs(want).max() < FP16_TOLERANCE


def test_fp16_graphs_keep_their_fp32_islands(built_fp16):
    for name in ("encoder", "decoder"):
        sites = islands(onnx.load(str(built_fp16 / f"{name}.onnx")))
        for site in ("RoPE", "residual stream, adaLN modulation, gates"):
            assert set(sites[site]) == {"float32"}, (name, site, sites[site])
        # RMSNorm: the reduction and scaling in fp32; only the learned-weight product of q/k norms is fp16
        assert sites["RMSNorm"]["float32"] > 4 * sites["RMSNorm"].get("float16", 0), (name, sites["RMSNorm"])
        assert set(sites["linear/attention matmul"]) == {"float16"}  # the work is in fp16
    assert set(islands(onnx.load(str(built_fp16 / "encoder.onnx")))["timestep features"]) == {"float32"}
    assert set(islands(onnx.load(str(built_fp16 / "decoder.onnx")))["final LayerNorm"]) == {"float32"}


def test_report_lists_activation_magnitudes_within_fp16_range(report):
    mags = report["activation_magnitudes"]
    for site in ("residual stream", "adaLN gate", "adaLN scale", "MLP hidden (SwiGLU product)", "state s", "velocity v"):
        assert 0 < mags[site]["max_abs"] < 65504, site
    assert report["fp32_islands"]["decoder"]["final LayerNorm"] == {"float32": 1}


def test_check_command_prints_tables_and_json(cli, built_fp16, built, tmp_path):
    r = cli("check", built_fp16, "--against", built, "--steps", 4, "--json", "--out", tmp_path / "r.json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["precision"] == "fp16" and data["sampling_run"]["steps"] == 4
    assert json.loads((tmp_path / "r.json").read_text()) == data
    r = cli("check", built_fp16, "--steps", 2)
    assert r.code == 0 and "sampling run" in r.out and "residual stream" in r.out and "fp32 PyTorch" in r.out
    r = cli("check", built_fp16, "--against", built_fp16)
    assert r.code == 2 and "fp32 build" in r.err and len(r.err.strip().splitlines()) == 1


def test_bf16_emulation_rounds_every_bf16_tensor_and_computes_in_fp32(tmp_path):
    """A bf16 MatMul + Add becomes fp32 compute with each result rounded to bf16, as GPU bf16 kernels do."""
    rng = np.random.default_rng(0)
    a, w = rng.standard_normal((3, 5)).astype(np.float32), rng.standard_normal((5, 4)).astype(np.float32)
    to_bf16 = lambda v: torch.from_numpy(v).to(torch.bfloat16).float().numpy()  # noqa: E731
    w_init = helper.make_tensor("w", TensorProto.BFLOAT16, w.shape,
                                torch.from_numpy(w).to(torch.bfloat16).view(torch.int16).numpy().astype(np.uint16).tobytes(), raw=True)
    g = helper.make_graph(
        [helper.make_node("Cast", ["a"], ["a16"], to=TensorProto.BFLOAT16),
         helper.make_node("MatMul", ["a16", "w"], ["m"]),
         helper.make_node("Add", ["m", "m"], ["s"]),
         helper.make_node("Cast", ["s"], ["out"], to=TensorProto.FLOAT)],
        "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [3, 5])], [helper.make_tensor_value_info("out", TensorProto.FLOAT, [3, 4])],
        [w_init])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    onnx.save(model, tmp_path / "g.onnx")
    (got,) = cpu_session(tmp_path / "g.onnx").run(None, {"a": a})
    m = to_bf16(to_bf16(a).astype(np.float64) @ to_bf16(w).astype(np.float64))
    np.testing.assert_allclose(got, to_bf16(m + m), rtol=1e-6)
    assert not any(t.data_type == TensorProto.BFLOAT16 for t in emulate_half(model).graph.initializer)


def test_fp16_emulation_overflows_where_a_gpu_writing_fp16_would(tmp_path):
    """300 * 300 = 9e4 > 65504: inf once stored as fp16, even though the product is computed in fp32."""
    g = helper.make_graph(
        [helper.make_node("Cast", ["a"], ["h"], to=TensorProto.FLOAT16),
         helper.make_node("Mul", ["h", "h"], ["sq"]),
         helper.make_node("Cast", ["sq"], ["out"], to=TensorProto.FLOAT)],
        "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2])], [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), tmp_path / "g.onnx")
    (got,) = cpu_session(tmp_path / "g.onnx").run(None, {"a": np.array([300.0, 3.0001], np.float32)})
    assert np.isinf(got[0]) and got[1] == np.float32(np.float16(np.float16(3.0001) ** 2))


def test_fp32_islands_carry_a_residual_stream_beyond_fp16_range(tmp_path):
    """Gates large enough that the residual stream passes 65504 (trained DiTs' massive activations):
    before the fp32 residual/modulation islands this fp16 build produced inf and was refused."""
    from ddt_export.build import build
    from ddt_export.config import DDTConfig
    from ddt_export.model import DDT, init_random
    from ddt_export.official import ModelSource
    from ddt_export.sampler import SamplerSettings
    from tests.conftest import ARCH

    cfg = DDTConfig(**ARCH, latent_size=8)
    model = init_random(DDT(cfg), seed=0)
    D = cfg.hidden_size
    with torch.no_grad():
        for block in model.blocks:
            bias = block.adaLN_modulation[0].bias
            bias[2 * D:3 * D] += 20.0  # gate_msa
            bias[5 * D:6 * D] += 20.0  # gate_mlp
    src = ModelSource(name="massive", arch=cfg, null_class=cfg.num_classes, sampler=SamplerSettings(num_steps=8, guidance=2.0, interval_min=0.3))
    build(src, model, tmp_path / "massive", precision="fp16")
    r = check(tmp_path / "massive", steps=8)
    assert r["activation_magnitudes"]["residual stream"]["max_abs"] > 65504  # the stress is real
    assert all(e["finite"] and e["max_rel_error"] < FP16_TOLERANCE for e in r["graphs"].values()), r["graphs"]
    assert r["sampling_run"]["finite"] and r["sampling_run"]["max_rel_error"] < FP16_TOLERANCE


def test_emulated_sessions_handle_external_weights_and_graphs_past_protobufs_limit(tmp_path, monkeypatch):
    """XL graphs keep weights in `<file>.data`; emulated fp16 doubles them past 2 GB: both paths must load."""
    import ddt_export.precision.half as P

    rng = np.random.default_rng(1)
    w = rng.standard_normal((16, 8)).astype(np.float16)
    for dtype, name in ((TensorProto.FLOAT16, "h"), (TensorProto.FLOAT, "f")):
        g = helper.make_graph(
            [helper.make_node("Cast", ["a"], ["ac"], to=dtype), helper.make_node("MatMul", ["ac", "w"], ["m"]),
             helper.make_node("Cast", ["m"], ["out"], to=TensorProto.FLOAT)],
            "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [4, 16])], [helper.make_tensor_value_info("out", TensorProto.FLOAT, [4, 8])],
            [helper.make_tensor("w", dtype, w.shape, w.astype(np.float16 if dtype == TensorProto.FLOAT16 else np.float32).tobytes(), raw=True)])
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), tmp_path / f"{name}.onnx",
                  save_as_external_data=True, location=f"{name}.onnx.data", size_threshold=0)
    a = rng.standard_normal((4, 16)).astype(np.float32)
    (inline,) = cpu_session(tmp_path / "h.onnx").run(None, {"a": a})
    monkeypatch.setattr(P, "INLINE_LIMIT", 0)  # as if past 2 GB: through a temporary file with external weights
    (via_file,) = cpu_session(tmp_path / "h.onnx").run(None, {"a": a})
    np.testing.assert_array_equal(inline, via_file)
    want = (a.astype(np.float16).astype(np.float64) @ w.astype(np.float64)).astype(np.float16)
    np.testing.assert_allclose(inline, want.astype(np.float32), rtol=1e-3)
    (f32,) = cpu_session(tmp_path / "f.onnx").run(None, {"a": a})  # fp32: straight from the path
    np.testing.assert_allclose(f32, a @ w.astype(np.float32), rtol=1e-5)
