"""int8 and fp8 builds: QDQ graphs with activation ranges from the model's own trajectories, float sites chosen by measured sensitivity.

The builds are of the shared tiny official-format model (tests/conftest.py), made once per
session through the real CLI (`ddt-export build --precision int8|fp8`).
"""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from ddt_export.manifest import read
from ddt_export.pipeline import Pipeline
from ddt_export.quant import summary
from ddt_export.quant.plan import QuantPlan
from ddt_export.quant.sites import choose_float_sites, site_nodes
from tests.quant import matmul_inputs


def test_int8_build_records_its_range_data_and_its_choice(built_int8):
    m = json.loads((built_int8 / "manifest.json").read_text())
    assert m["precision"] == "int8"
    q = m["quantization"]
    assert q["quantizer"].startswith("onnxruntime.quantization") and q["quantizer_version"]
    ranges = q["ranges"]  # the activation-range data
    assert len(ranges["seeds"]) >= 2 and ranges["encoder_batches"] == len(ranges["seeds"]) * ranges["steps_per_run"]
    assert ranges["decoder_batches"] == ranges["encoder_batches"]  # every step of full runs, encoder at every step
    assert len({y for labels in ranges["labels"].values() for y in labels}) >= 5  # several classes
    sm = q["smoothing"]  # int8 quantises graphs of the SmoothQuant-folded weights (tests/quant/test_smoothing.py)
    assert sm["alpha"] == QuantPlan().alpha and sm["linears"] and q["seconds"]["smoothing"] > 0
    assert sm["channel_spread"]["after"] < sm["channel_spread"]["before"]
    for name in ("encoder", "decoder"):
        g = q["graphs"][name]
        alone = {s: v["error_alone"] for s, v in g["sites"].items()}
        # the recorded choice is the rule applied to the recorded numbers, then the max-error guard's additions;
        # of those, the ones per_token's rule passed are per-token sites (tests/quant/test_per_token.py), the rest float
        guarded = [x["site"] for x in g["max_rel_guard"]]
        static_rejects = sorted([*g["float_sites"], *(g.get("per_token_sites") or {})])
        assert static_rejects == sorted(choose_float_sites(alone, q["sensitivity"]["threshold"]) + guarded)
        max_alone = {s: v["max_rel_error_alone"] for s, v in g["sites"].items()}
        assert guarded == sorted(guarded, key=max_alone.get, reverse=True)  # largest max error alone first
        assert g["max_rel_error"] <= QuantPlan().max_rel or not g["quantized_nodes"]
        assert [s for s, v in g["sites"].items() if v["float"]] == sorted(g["float_sites"], key=list(g["sites"]).index)
        assert g["quantized_nodes"] == sum(v["nodes"] for v in g["sites"].values() if v["scheme"] == "static")
        assert 0 < g["quantized_nodes"] < g["matmul_nodes"] or not g["float_sites"]
        assert m["graphs"][name]["check"]["max_rel_error"] <= m["graphs"][name]["check"]["tolerance"]


def test_the_build_says_how_long_quantisation_took(official, tmp_path):
    from typer.testing import CliRunner

    from ddt_export.cli import app

    out = tmp_path / "int8"
    result = CliRunner().invoke(app, ["build", "--config", str(official.config), "--ckpt", str(official.ckpt), "--precision", "int8",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    q = read(out).doc.quantization.model_dump(mode="json", by_alias=True)
    assert summary(q) in result.output  # printed as recorded
    assert f"int8 quantisation: {q['seconds']['total']:.0f} s in all" in result.output
    for name, g in q["graphs"].items():
        assert f"{g['quantized_nodes']} of {g['matmul_nodes']} matmuls int8" in result.output
    assert "int8: measuring encoder activation ranges" in result.output  # not a terminal: the stages are lines, not a silent spinner
    assert "calibrat" not in result.output  # calibration is the schedule's similarity measurement (`ddt-export calibrate`)


def test_float_sites_really_stay_float_and_the_rest_are_int8_on_both_inputs(built_int8):
    m = read(built_int8)
    q = m.doc.quantization.model_dump(mode="json", by_alias=True)
    for name in ("encoder", "decoder"):
        model = onnx.load(str(built_int8 / f"{name}.onnx"))
        sites = site_nodes(model, m.arch.num_encoder_blocks)
        inputs = matmul_inputs(model)
        spec = m.graph(name)
        assert [i.name for i in model.graph.input] == [t.name for t in spec.inputs]  # the fp32 graph's interface
        assert [i.type.tensor_type.elem_type for i in model.graph.input] == [
            {"float32": TensorProto.FLOAT, "int64": TensorProto.INT64}[t.dtype] for t in spec.inputs]
        assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
        for site, nodes in sites.items():
            for node in nodes:
                scheme = q["graphs"][name]["sites"][site]["scheme"]
                if scheme == "float":
                    assert "DequantizeLinear" not in inputs[node], (site, node)
                elif scheme == "per_token":  # int8 weight, float activation (quantised at run time by OpenVINO)
                    assert inputs[node][0] != "DequantizeLinear" and inputs[node][1] == "DequantizeLinear", (site, node)
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

    written = []  # the optimised graphs of the backend's sessions, in the order it opens them (encoder, decoder)
    real = ort.InferenceSession

    def recording(path_or_bytes, opts=None, *args, **kwargs):  # bytes: a graph with per-token weights folded
        if opts is not None:
            written.append(str(tmp_path / f"opt-{len(written)}.onnx"))
            opts.optimized_model_filepath = written[-1]
        return real(path_or_bytes, opts, *args, **kwargs)

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
        assert len(quantised) == m.doc.quantization.model_dump(mode="json", by_alias=True)["graphs"][name]["quantized_nodes"] > 0
        optimised = onnx.load(written[("encoder", "decoder").index(name)])
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
    assert m.precision == "fp8" and m.doc.quantization.model_dump(mode="json", by_alias=True)["scheme"]["element_type"] == "float8e4m3fn"
    assert "smoothing" not in m.doc.quantization.model_dump(mode="json", by_alias=True)  # e4m3 keeps its relative precision at any magnitude
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
