"""`ddt-bench precision` on the tiny model: its fp32 build against its int8 build, four rows timed in one process.

Timings themselves are not asserted (speed belongs in benchmarks/); the arithmetic that turns them
into the table is: per-call ratios, GFLOP/s from the architecture's multiply-adds, the ceilings used.
"""

from __future__ import annotations

import json

import pytest

from ddt_export.bench import flops, precision
from ddt_export.manifest import read


@pytest.fixture(scope="module")
def result(built, built_int8):
    opts = precision.Options(steps=3, ratios=(0.0, 0.5), repeat=1, calls=2, ceiling_size=256)
    return precision.run(built, built_int8, opts)


def test_rows_and_their_arithmetic(result, built, built_int8):
    arch = read(built).arch
    rows = {r["name"]: r for r in result["rows"]}
    assert list(rows) == [name for name, *_ in precision.ROWS]
    assert [r["precision"] for r in result["rows"]] == ["fp32", "bf16", "int8", "int8"]
    base = rows["openvino bf16"]
    enc_flop = 2 * flops.encoder_macs(arch).total * 2 * result["batch"]
    for r in rows.values():
        assert r["vs_openvino_bf16"]["encoder_call"] == pytest.approx(base["encoder_ms"] / r["encoder_ms"])
        assert r["vs_openvino_bf16"]["decoder_call"] == pytest.approx(base["decoder_ms"] / r["decoder_ms"])
        assert r["encoder_gflops"] == pytest.approx(enc_flop / r["encoder_ms"] / 1e6)
        ceiling = result["ceilings"]["int8"]["int8"] if r["precision"] == "int8" else result["ceilings"][r["precision"]]
        assert r["ceiling_gflops"] == ceiling and r["encoder_fraction_of_ceiling"] == pytest.approx(r["encoder_gflops"] / ceiling)
        for k, v in r["latency_s"].items():
            assert len(v["runs"]) == 1 and v["median"] > 0
            assert r["vs_openvino_bf16"]["whole_run"][k] == pytest.approx(base["latency_s"][k]["median"] / v["median"])
    assert base["vs_openvino_bf16"]["encoder_call"] == 1.0
    assert result["encoder_calls"] == {"0": 3, "0.5": 2}
    sources = result["ceilings"]["int8"]["sources_gops"]
    assert {"onnxruntime_matmulinteger_u8s8", "onnxruntime_qdq_matmul"} <= set(sources)
    quant = read(built_int8).doc.quantization.graphs
    assert result["float_sites"] == {g: sorted(v.float_sites) for g, v in quant.items()}


def test_every_row_samples_the_same_run(result):
    # the same noise, labels and settings: fp32 rows agree exactly with the reference row, 8-bit ones closely
    rows = {r["name"]: r for r in result["rows"]}
    assert rows["onnxruntime fp32"]["latents_rel_error_vs_onnxruntime_fp32"] == 0.0
    assert rows["openvino bf16"]["latents_rel_error_vs_onnxruntime_fp32"] < 0.05
    for name in ("onnxruntime int8", "openvino int8"):
        assert 0 < rows[name]["latents_rel_error_vs_onnxruntime_fp32"] < 0.15, name


def test_cli_writes_the_json_and_a_table(bench_cli, built, built_int8, tmp_path):
    out = tmp_path / "p.json"
    r = bench_cli("precision", built, built_int8, "--steps", "2", "--ratios", "0", "--repeat", "1", "--calls", "1", "--json", out)
    assert r.code == 0, r.err
    res = json.loads(out.read_text())
    assert [row["name"] for row in res["rows"]] == [name for name, *_ in precision.ROWS]
    assert "openvino int8" in r.out and "vs OpenVINO bf16" in r.out


def test_builds_of_different_models_are_refused(bench_cli, bundled_build, built_int8):
    r = bench_cli("precision", bundled_build, built_int8)
    assert r.code == 2 and "hold different architectures" in r.err and "Traceback" not in r.err
