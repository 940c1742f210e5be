"""int8 and fp8 builds: QDQ graphs calibrated on the model's own trajectories, float sites chosen by measured sensitivity.

The builds are of the shared tiny official-format model (tests/conftest.py), made once per
session through the real CLI (`ddt-export build --precision int8|fp8`).
"""

from __future__ import annotations

import json

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ddt_export.quant import run as quantize
from ddt_export.manifest import read
from ddt_export.pipeline import Pipeline


def matmul_inputs(model: onnx.ModelProto) -> dict[str, list[str | None]]:
    """{MatMul/Gemm node: [op type producing each of its first two inputs (None: initializer or graph input)]}."""
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    return {n.name: [producers.get(i) for i in n.input[:2]] for n in model.graph.node if n.op_type in ("MatMul", "Gemm")}


def test_every_matmul_of_both_graphs_belongs_to_one_named_site(built):
    m = read(built)
    arch = m.arch
    want = {
        "encoder": {"timestep_embedder": 2, "patch_embedding": 1, **{s: arch.num_encoder_blocks for s in (
            "encoder_adaln", "qkv", "attention_scores", "attention_values", "attention_proj", "swiglu_w2")},
            "swiglu_w1_w3": 2 * arch.num_encoder_blocks},
        "decoder": {"patch_embedding": 1, "final_adaln": 1, "final_linear": 1, **{s: arch.num_decoder_blocks for s in (
            "decoder_adaln", "qkv", "attention_scores", "attention_values", "attention_proj", "swiglu_w2")},
            "swiglu_w1_w3": 2 * arch.num_decoder_blocks},
    }
    for name in ("encoder", "decoder"):
        sites = quantize.site_nodes(onnx.load(str(built / f"{name}.onnx")), arch.num_encoder_blocks)
        assert {s: len(v) for s, v in sites.items()} == want[name]
        assert set(sites) <= set(quantize.SITES)


def test_float_sites_are_the_sensitivity_outliers():
    alone = {"a": 1.0e-2, "b": 1.1e-2, "c": 0.9e-2, "d": 2.5e-2, "e": 1.6e-2}  # median 1.1e-2
    assert quantize.choose_float_sites(alone, 1.5) == ["d"]
    assert quantize.choose_float_sites(alone, 1.4) == ["d", "e"]
    assert quantize.choose_float_sites({}, 1.5) == []


def test_int8_build_records_its_calibration_and_its_choice(built_int8):
    m = json.loads((built_int8 / "manifest.json").read_text())
    assert m["precision"] == "int8"
    q = m["quantization"]
    assert q["quantizer"].startswith("onnxruntime.quantization") and q["quantizer_version"]
    cal = q["calibration"]
    assert len(cal["seeds"]) >= 2 and cal["encoder_batches"] == len(cal["seeds"]) * cal["steps_per_run"]
    assert cal["decoder_batches"] == cal["encoder_batches"]  # every step of full runs, encoder at every step
    assert len({y for labels in cal["labels"].values() for y in labels}) >= 5  # several classes
    sm = q["smoothing"]  # int8 quantises graphs of the SmoothQuant-folded weights (tests/test_smoothing.py)
    assert sm["alpha"] == quantize.CalibrationPlan().alpha and sm["linears"] and q["seconds"]["smoothing"] > 0
    assert sm["channel_spread"]["after"] < sm["channel_spread"]["before"]
    for name in ("encoder", "decoder"):
        g = q["graphs"][name]
        alone = {s: v["error_alone"] for s, v in g["sites"].items()}
        # the recorded choice is the rule applied to the recorded numbers, then the max-error guard's additions
        guarded = [x["site"] for x in g["max_rel_guard"]]
        assert sorted(g["float_sites"]) == sorted(quantize.choose_float_sites(alone, q["sensitivity"]["threshold"]) + guarded)
        max_alone = {s: v["max_rel_error_alone"] for s, v in g["sites"].items()}
        assert guarded == sorted(guarded, key=max_alone.get, reverse=True)  # largest max error alone first
        assert g["max_rel_error"] <= quantize.CalibrationPlan().max_rel or not g["quantized_nodes"]
        assert [s for s, v in g["sites"].items() if v["float"]] == sorted(g["float_sites"], key=list(g["sites"]).index)
        assert g["quantized_nodes"] == sum(v["nodes"] for v in g["sites"].values() if not v["float"])
        assert 0 < g["quantized_nodes"] < g["matmul_nodes"] or not g["float_sites"]
        assert m["graphs"][name]["check"]["max_rel_error"] <= m["graphs"][name]["check"]["tolerance"]


@pytest.mark.parametrize("precision", ["int8", "fp8"])
def test_site_variants_derived_from_the_all_sites_graph_equal_the_quantisers_own(built, tmp_path, precision):
    """The sensitivity pass derives each site's graph from the one all-sites graph (Graph.only) instead of a
    quantiser pass per site; it must be the graph the quantiser writes for those sites, numerically."""
    import onnxruntime as ort

    from ddt_export.official import ModelSource
    from ddt_export.quant.graph import Graph

    m = read(built)
    src = ModelSource(m.name, m.arch, m.null_class, m.sampler, m.space)
    plan = quantize.CalibrationPlan(seeds=(0,), samples_per_seed=2, max_steps=4, heldout_seeds=(7,), heldout_samples=1)
    feeds = quantize.trajectories(built, src, plan, (0,), 2)
    for name in ("encoder", "decoder"):
        g = Graph(name, built / f"{name}.onnx", tmp_path, feeds[name], feeds[name][:3], precision, m.arch.num_encoder_blocks)
        full = g.quantised(list(g.sites))
        sites = list(g.sites)
        for chosen in ([], sites[:1], sites[1:3], sites[:-1], sites):
            derived, written = g.only(full, chosen), g.quantised(chosen)
            assert sorted(n.op_type for n in derived.graph.node) == sorted(n.op_type for n in written.graph.node), (name, chosen)
            a, b = (ort.InferenceSession(x.SerializeToString(), providers=["CPUExecutionProvider"]) for x in (derived, written))
            for f in g.heldout:
                want = b.run(None, f)[0]
                np.testing.assert_allclose(a.run(None, f)[0], want, rtol=0, atol=1e-6 * np.abs(want).max())


def test_a_float_site_sharing_a_graph_input_with_an_int8_site_stays_float(built, tmp_path):
    """The decoder's adaLN and final adaLN both read the graph input s; quantize_static rewires every consumer of a
    quantised graph input to its DQ, so the digits build's "float" decoder adaLN was reading int8 s."""
    from ddt_export.official import ModelSource
    from ddt_export.quant.graph import Graph

    m = read(built)
    src = ModelSource(m.name, m.arch, m.null_class, m.sampler, m.space)
    plan = quantize.CalibrationPlan(seeds=(0,), samples_per_seed=2, max_steps=3, heldout_seeds=(7,), heldout_samples=1)
    feeds = quantize.trajectories(built, src, plan, (0,), 2)["decoder"]
    g = Graph("decoder", built / "decoder.onnx", tmp_path, feeds, feeds[:1], "int8", m.arch.num_encoder_blocks)
    model = g.quantised(["final_adaln"])
    inputs = matmul_inputs(model)
    assert all(inputs[n] == ["DequantizeLinear", "DequantizeLinear"] for n in g.sites["final_adaln"])
    for site, nodes in g.sites.items():
        if site != "final_adaln":
            assert all("DequantizeLinear" not in inputs[n] for n in nodes), site


def test_the_build_says_how_long_calibration_took(official, tmp_path):
    from typer.testing import CliRunner

    from ddt_export.cli import app

    out = tmp_path / "int8"
    result = CliRunner().invoke(app, ["build", "--config", str(official.config), "--ckpt", str(official.ckpt), "--precision", "int8",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    q = read(out).data["quantization"]
    assert quantize.summary(q) in result.output  # printed as recorded
    assert f"int8 calibration: {q['seconds']['total']:.0f} s in all" in result.output
    for name, g in q["graphs"].items():
        assert f"{g['quantized_nodes']} of {g['matmul_nodes']} matmuls int8" in result.output
    assert "int8: calibrating encoder" in result.output  # not a terminal: the stages are lines, not a silent spinner


def test_float_sites_really_stay_float_and_the_rest_are_int8_on_both_inputs(built_int8):
    m = read(built_int8)
    q = m.data["quantization"]
    for name in ("encoder", "decoder"):
        model = onnx.load(str(built_int8 / f"{name}.onnx"))
        sites = quantize.site_nodes(model, m.arch.num_encoder_blocks)
        inputs = matmul_inputs(model)
        spec = m.graph(name)
        assert [i.name for i in model.graph.input] == [t.name for t in spec.inputs]  # the fp32 graph's interface
        assert [i.type.tensor_type.elem_type for i in model.graph.input] == [
            {"float32": TensorProto.FLOAT, "int64": TensorProto.INT64}[t.dtype] for t in spec.inputs]
        assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
        for site, nodes in sites.items():
            for node in nodes:
                if q["graphs"][name]["sites"][site]["float"]:
                    assert "DequantizeLinear" not in inputs[node], (site, node)
                else:
                    assert inputs[node] == ["DequantizeLinear", "DequantizeLinear"], (site, node)
        zero_points = [numpy_helper.to_array(t) for t in model.graph.initializer if t.name.endswith("zero_point")]
        assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)  # symmetric: TensorRT's rule


def test_quantised_matmuls_run_as_int8_kernels_on_onnxruntime(built_int8, monkeypatch, tmp_path):
    """Q/DQ sit on matmul inputs only, one pair per consumer, and the backend keeps the pairs apart, so onnxruntime's CPU
    fuses every int8 site into an int8 kernel. Quantised matmul outputs, or one DQ shared by SwiGLU's two input matmuls,
    left the B/2 encoder running float MatMuls over weights dequantised on every call (3x slower than fp32)."""
    import onnxruntime as ort

    from ddt_export.backends.onnxruntime_backend import OnnxRuntimeBackend

    written = {}
    real = ort.InferenceSession

    def recording(path, opts=None, *args, **kwargs):  # the backend's own session, its optimised graph written out
        if opts is not None:
            opts.optimized_model_filepath = written.setdefault(str(path), str(tmp_path / f"opt-{len(written)}.onnx"))
        return real(path, opts, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", recording)
    m = read(built_int8)
    OnnxRuntimeBackend(m, providers=["CPUExecutionProvider"])
    for name in ("encoder", "decoder"):
        model = onnx.load(str(built_int8 / f"{name}.onnx"))
        inits = {t.name for t in model.graph.initializer}
        producers = {o: n.op_type for n in model.graph.node for o in n.output}
        consumers: dict[str, int] = {}
        for n in model.graph.node:
            for i in n.input:
                consumers[i] = consumers.get(i, 0) + 1
        for n in model.graph.node:
            if n.op_type == "QuantizeLinear":
                assert producers.get(n.input[0]) not in ("MatMul", "Gemm"), n.name  # outputs stay float
            if n.op_type == "DequantizeLinear" and n.input[0] not in inits:
                assert consumers[n.output[0]] == 1, n.name  # one pair per consumer
        quantised = [n for n in model.graph.node if n.op_type in ("MatMul", "Gemm") and producers.get(n.input[0]) == "DequantizeLinear"]
        assert len(quantised) == m.data["quantization"]["graphs"][name]["quantized_nodes"] > 0
        optimised = onnx.load(written[str(built_int8 / f"{name}.onnx")])
        ops = [n.op_type for n in optimised.graph.node]
        # onnxruntime has no float-output int8 Gemm: the timestep embedder's two Gemms (batch rows only) stay DQ + Gemm
        assert ops.count("MatMulIntegerToFloat") + ops.count("QLinearMatMul") == sum(n.op_type == "MatMul" for n in quantised), name
        assert ops.count("MatMul") == sum(n.op_type == "MatMul" for n in model.graph.node) - sum(n.op_type == "MatMul" for n in quantised)


def trajectory_error(build, reference, steps=None, **kw) -> float:
    """max |build - reference| / max |reference| of the final latents of one whole CFG run (4 samples, seed 5)."""
    labels = [0, 3, 7, 10]  # incl. the null class
    got = Pipeline.load(build, "onnxruntime").generate(labels, seed=5, num_steps=steps, **kw).latents
    want = Pipeline.load(reference, "onnxruntime").generate(labels, seed=5, num_steps=steps, **kw).latents
    return float(np.abs(got - want).max() / np.abs(want).max())


def test_int8_whole_run_stays_close_to_fp32(built_int8, built):
    # Random weights, D = 64: per-tensor int8 costs every matmul input ~1%; a whole run stays within 10%.
    assert trajectory_error(built_int8, built) < 0.10
    assert trajectory_error(built_int8, built, sharing_ratio=0.5, schedule="uniform") < 0.10


def test_fp8_graphs_are_e4m3_qdq_from_the_int8_recipe(built_fp8, built):
    m = read(built_fp8)
    assert m.precision == "fp8" and m.data["quantization"]["scheme"]["element_type"] == "float8e4m3fn"
    assert "smoothing" not in m.data["quantization"]  # e4m3 keeps its relative precision at any magnitude
    for name in ("encoder", "decoder"):
        model = onnx.load(str(built_fp8 / f"{name}.onnx"))
        assert max(i.version for i in model.opset_import if i.domain in ("", "ai.onnx")) == 19  # float8 Q/DQ
        qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
        assert qdq
        inits = {t.name: t for t in model.graph.initializer}
        for n in qdq:
            assert inits[n.input[2]].data_type == TensorProto.FLOAT8E4M3FN
        weights = [inits[n.input[0]] for n in qdq if n.op_type == "DequantizeLinear" and n.input[0] in inits]
        assert weights and all(w.data_type == TensorProto.FLOAT8E4M3FN for w in weights)
    assert trajectory_error(built_fp8, built) < 0.10


def test_to_fp8_matches_e4m3_arithmetic_on_a_matmul():
    """int8 QDQ MatMul -> fp8: y = (fp8(x / sx) sx) @ (fp8(w / sw) sw) with sx = amax_x / 448, sw per column."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 5)).astype(np.float32)
    x = rng.normal(size=(3, 8)).astype(np.float32)
    amax = np.float32(3.0)
    sw8 = (np.abs(w).max(0) / 127).astype(np.float32)
    q_w = np.clip(np.round(w / sw8), -127, 127).astype(np.int8)
    inits = [numpy_helper.from_array(q_w, "w_quantized"), numpy_helper.from_array(sw8, "w_scale"),
             numpy_helper.from_array(np.zeros(5, np.int8), "w_zero_point"),
             numpy_helper.from_array(np.float32(amax / 127), "x_scale"), numpy_helper.from_array(np.int8(0), "x_zero_point")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero_point"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero_point"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w_quantized", "w_scale", "w_zero_point"], ["wd"], axis=1),
             helper.make_node("MatMul", ["xd", "wd"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 5])], inits)
    model = quantize.to_fp8(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), {"w": w})
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    f8 = ml_dtypes.float8_e4m3fn
    sx, sw = amax / 448, np.abs(w).max(0) / 448
    want = (np.clip(x / sx, -448, 448).astype(f8).astype(np.float32) * sx) @ ((w / sw).astype(f8).astype(np.float32) * sw)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_int8_build_runs_on_openvino_like_onnxruntime(built_int8):
    labels = [1, 4]
    from ddt_export.backends.openvino_backend import OpenVinoBackend

    m = read(built_int8)
    backend = OpenVinoBackend(m, precision="fp32")  # the float parts in fp32, as onnxruntime computes them
    pipe = Pipeline(backend, arch=m.arch, null_class=m.null_class, sampler=m.sampler, space=m.space, manifest=m)
    ov = pipe.generate(labels, seed=2, num_steps=6).latents
    ort = Pipeline.load(built_int8, "onnxruntime").generate(labels, seed=2, num_steps=6).latents
    # same QDQ semantics; the runtimes round the int8 requantisation differently: a few int8 steps apart at most
    assert float(np.abs(ov - ort).max() / np.abs(ort).max()) < 0.05
