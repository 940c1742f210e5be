"""Per-token int8 sites (ddt_export/quant/per_token.py): the choice rule, NNCF's compressed weights, and how each runtime runs them.

The build is the shared tiny official-format model's `--precision int8` (tests/conftest.py).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from ddt_export.errors import DDTError
from ddt_export.manifest import read
from ddt_export.pipeline import Pipeline
from ddt_export.quant import per_token
from ddt_export.quant.plan import QuantPlan
from ddt_export.quant.sites import site_nodes


# ----------------------------------------------------------------------------- the rule, on plain numbers


def test_choice_is_the_static_ratio_rule_then_the_guard_largest_max_error_first():
    alone = {"a": 0.01, "b": 0.02, "c": 0.05}
    alone_max = {"a": 0.03, "b": 0.2, "c": 0.1}
    # threshold 1.5 x a static median of 0.02: c (0.05) stays float, a and b pass
    chosen, guarded = per_token.choose(list(alone), alone, alone_max, 0.02, 1.5, 1.0, max_error=lambda s: 0.0)
    assert (chosen, guarded) == (["a", "b"], [])
    measured = []

    def max_error(sites):  # the graph is too wrong while b is per-token
        measured.append(list(sites))
        return 0.5 if "b" in sites else 0.05

    chosen, guarded = per_token.choose(list(alone), alone, alone_max, 0.02, 1.5, 0.1, max_error=max_error)
    assert chosen == ["a"] and guarded == [{"site": "b", "max_rel_error_before": 0.5}]
    assert measured == [["a", "b"], ["a"]]
    assert per_token.choose(["a"], {"a": 1.0}, {"a": 1.0}, 0.02, 1.5, 0.1, max_error=lambda s: 9.0) == ([], [])


def test_sites_without_weights_are_never_candidates():
    assert per_token.candidates(["attention_values", "decoder_adaln", "attention_scores", "swiglu_w2"]) == ["decoder_adaln", "swiglu_w2"]


# ----------------------------------------------------------------------------- the graphs NNCF writes


def test_compress_gives_exactly_the_named_matmuls_int8_weights_per_output_channel(built):
    model = onnx.load(str(built / "decoder.onnx"))
    m = read(built)
    sites = site_nodes(model, m.arch.num_encoder_blocks)
    matmuls = [n for nodes in sites.values() for n in nodes]
    chosen = sites["decoder_adaln"]
    out = per_token.compress(model, chosen, matmuls)
    assert per_token.compressed_matmuls(out) == set(chosen)
    assert per_token.compressed_matmuls(model) == set()  # the argument is left as it was
    fp32 = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    inits = {t.name: t for t in out.graph.initializer}
    producers = {o: n for n in out.graph.node for o in n.output}
    original = {n.name: n for n in model.graph.node}
    for node in (n for n in out.graph.node if n.name in chosen):
        dq = producers[node.input[1]]
        q = numpy_helper.to_array(inits[dq.input[0]])
        scale = numpy_helper.to_array(inits[dq.input[1]])
        w = fp32[original[node.name].input[1]]  # (K, N)
        assert q.dtype == np.int8 and q.shape == w.shape and scale.shape == (w.shape[1],)  # one scale per output column
        step = np.abs(scale)  # NNCF signs the scale so that the column's largest |w| lands on -128
        # round to nearest, half a step; a value near -(the largest) lands past +127 and is clipped: under one step
        err = np.abs(q * scale - w) / step
        assert err.max() < 1.0 and np.median(err) < 0.3
        assert np.allclose(step, np.abs(w).max(axis=0) / 128, rtol=1e-3)  # symmetric, max |w| per column


def test_compress_of_nothing_is_the_graph_itself(built):
    model = onnx.load(str(built / "decoder.onnx"))
    assert per_token.compress(model, [], []) is model


# ----------------------------------------------------------------------------- the build


def _pt_sites(q: dict, name: str) -> list[str]:
    return [s for s, v in q["graphs"][name]["sites"].items() if v["scheme"] == "per_token"]


def test_int8_build_records_a_scheme_per_site_and_the_graph_has_it(built_int8):
    m = read(built_int8)
    q = m.doc.quantization.model_dump(mode="json", by_alias=True)
    assert q["scheme"]["per_token"]["group_size"] == QuantPlan().per_token_group
    assert set(q["scheme"]["per_token"]["activations"]) == {"openvino", "onnxruntime", "tensorrt"}
    some = 0
    for name in ("encoder", "decoder"):
        g = q["graphs"][name]
        model = onnx.load(str(built_int8 / f"{name}.onnx"))
        sites = site_nodes(model, m.arch.num_encoder_blocks)
        pt = _pt_sites(q, name)
        some += len(pt)
        assert sorted(pt) == sorted(g["per_token_sites"])
        assert per_token.compressed_matmuls(model) == {n for s in pt for n in sites[s]}
        assert g["per_token_nodes"] == sum(len(sites[s]) for s in pt)
        for s, v in g["sites"].items():
            assert v["float"] == (v["scheme"] == "float")
            if v["scheme"] == "per_token":  # the rule as recorded: a static reject whose per-token error passes
                assert v["error_alone"] >= q["sensitivity"]["threshold"] * g["median_site_error"] or any(
                    x["site"] == s for x in g["max_rel_guard"])
                assert v["per_token_error_alone"] < q["sensitivity"]["threshold"] * g["median_site_error"]
        assert set(g["errors_by_runtime"]) == {"onnxruntime", "openvino"}
        assert g["errors_by_runtime"]["openvino"]["max_rel_error"] <= QuantPlan().max_rel
    assert some, "the tiny model's int8 build has no per-token site: this test checks nothing"


def test_onnxruntime_runs_per_token_sites_as_fp32_matmuls_of_the_int8_weights(built_int8):
    """The backend folds the weight-only DQs once: the same numbers as the graph run as saved, no per-call dequantisation."""
    import onnxruntime as ort

    from ddt_export.backends.onnxruntime_backend import weights_folded

    path = built_int8 / "decoder.onnx"
    folded = onnx.load_from_string(weights_folded(path))
    assert per_token.compressed_matmuls(folded) == set()
    rng = np.random.default_rng(0)
    m = read(built_int8)
    spec = m.graph("decoder")
    feeds = {t.name: rng.standard_normal(t.concrete(2)).astype(np.float32) for t in spec.inputs}
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    want = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    got = ort.InferenceSession(folded.SerializeToString(), opts, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_openvino_compiles_per_token_builds_with_the_recorded_group(built_int8):
    from ddt_export.backends.openvino_backend import OpenVinoBackend

    m = read(built_int8)
    backend = OpenVinoBackend(m, precision="fp32")
    for compiled in backend.compiled(2):
        assert int(compiled.get_property("DYNAMIC_QUANTIZATION_GROUP_SIZE")) == QuantPlan().per_token_group


def test_per_token_runs_stay_close_to_fp32_on_every_runtime_that_claims_them(built_int8, built):
    from ddt_export.backends.openvino_backend import OpenVinoBackend

    labels = [0, 3, 7, 10]
    want = Pipeline.load(built, "onnxruntime").generate(labels, seed=5, num_steps=8).latents
    m = read(built_int8)
    runs = {"onnxruntime": Pipeline.load(built_int8, "onnxruntime").generate(labels, seed=5, num_steps=8).latents}
    backend = OpenVinoBackend(m, precision="fp32")
    pipe = Pipeline(backend, arch=m.arch, null_class=m.null_class, sampler=m.sampler, space=m.space, manifest=m)
    runs["openvino"] = pipe.generate(labels, seed=5, num_steps=8).latents
    for runtime, got in runs.items():
        assert np.isfinite(got).all(), runtime
        assert float(np.abs(got - want).max() / np.abs(want).max()) < 0.10, runtime  # as the static int8 bound


# ----------------------------------------------------------------------------- the speed rule


def test_per_token_is_kept_only_where_it_is_faster(monkeypatch):
    assert per_token.pays({"static_ms": 10.0, "per_token_ms": 9.0})
    assert not per_token.pays({"static_ms": 10.0, "per_token_ms": 10.0})
    for rule in ("auto", "always", "never"):
        monkeypatch.setenv("DDT_EXPORT_PER_TOKEN", rule)
        assert per_token.speed_rule() == rule
    monkeypatch.delenv("DDT_EXPORT_PER_TOKEN")
    assert per_token.speed_rule() == "auto"
    monkeypatch.setenv("DDT_EXPORT_PER_TOKEN", "sometimes")
    with pytest.raises(DDTError, match="DDT_EXPORT_PER_TOKEN='sometimes'; use auto, always or never"):
        per_token.speed_rule()


def test_a_build_where_per_token_is_slower_keeps_those_sites_float_and_says_why(official, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ddt_export.cli import app

    monkeypatch.setenv("DDT_EXPORT_PER_TOKEN", "auto")
    timed = []

    def slower(g, static, per, group, rounds=5):
        timed.append(g.name)
        return {"static_ms": 1.0, "per_token_ms": 2.0, "inference_precision": "bf16", "rows": 2, "rounds": rounds, "cpu": "test"}

    monkeypatch.setattr(per_token, "timed", slower)
    out = tmp_path / "int8"
    result = CliRunner().invoke(app, ["build", "--config", str(official.config), "--ckpt", str(official.ckpt), "--precision", "int8",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    q = read(out).doc.quantization.model_dump(mode="json", by_alias=True)
    assert timed  # the rule ran for a graph that had per-token candidates
    for name in timed:
        g = q["graphs"][name]
        assert g["per_token_sites"] == {} and g["per_token_speed"]["kept"] is False
        assert per_token.compressed_matmuls(onnx.load(str(out / f"{name}.onnx"))) == set()
        assert any("OpenVINO ran the graph slower with it on this CPU (2.0 vs 1.0 ms)" in why for why in g["float_sites"].values())


def test_timing_runs_both_graphs_on_openvino(built, tmp_path):
    import math
    from types import SimpleNamespace

    m = read(built)
    model = onnx.load(str(built / "decoder.onnx"))
    sites = site_nodes(model, m.arch.num_encoder_blocks)
    per = per_token.compress(model, sites["decoder_adaln"], [n for v in sites.values() for n in v])
    rng = np.random.default_rng(0)
    feeds = {t.name: rng.standard_normal(t.concrete(2)).astype(np.float32) for t in m.graph("decoder").inputs}
    speed = per_token.timed(SimpleNamespace(name="decoder", work=tmp_path, heldout=[feeds]), model, per, 64, rounds=2)
    assert speed["rows"] == 2 and speed["rounds"] == 2 and speed["inference_precision"] in ("bf16", "f32")
    assert all(math.isfinite(speed[k]) and speed[k] > 0 for k in ("static_ms", "per_token_ms"))


def test_never_keeps_every_float_site_float(official, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ddt_export.cli import app

    monkeypatch.setenv("DDT_EXPORT_PER_TOKEN", "never")
    out = tmp_path / "int8"
    result = CliRunner().invoke(app, ["build", "--config", str(official.config), "--ckpt", str(official.ckpt), "--precision", "int8",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    q = read(out).doc.quantization.model_dump(mode="json", by_alias=True)
    for name, g in q["graphs"].items():
        assert not g.get("per_token_sites") and all(v["scheme"] != "per_token" for v in g["sites"].values())
        assert per_token.compressed_matmuls(onnx.load(str(out / f"{name}.onnx"))) == set()
