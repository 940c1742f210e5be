"""`ddt-bench latency` on the tiny build: the JSON's schema and arithmetic, the loop it times, bad input.

No timing assertions: speed is measured in benchmarks/, never asserted in unit tests.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ddt_export.bench import ceiling, flops
from ddt_export.bench import latency as bench
from ddt_export.manifest import read
from ddt_export.sampler import SamplerSettings
from ddt_export.solvers import timesteps

STEPS = 8


@pytest.fixture(scope="module")
def result(built):
    opts = bench.Options(backend="onnxruntime", ratios=(0.5, 0.75), steps=STEPS, batch=2, repeat=1, ceiling_size=128)
    return bench.run(built, opts)


def test_schema_has_what_the_issue_asks(result):
    for key in ("backend", "steps", "batch", "encoder_ms", "decoder_ms", "rows", "reference"):
        assert key in result
    assert (result["backend"], result["steps"], result["batch"], result["cfg_batch"]) == ("onnxruntime", STEPS, 2, 4)
    for row in result["rows"]:
        for key in ("ratio", "schedule", "encoder_calls", "latency_ms", "speedup", "ideal_speedup", "efficiency"):
            assert key in row
        assert set(row["latency_ms"]) >= {"median", "min", "max"}
        assert row["latency_ms"]["min"] <= row["latency_ms"]["median"] <= row["latency_ms"]["max"]
    assert [r["name"] for r in result["reference"]] == ["torch-fp32", "torch-bf16-autocast"]
    for ref in result["reference"]:
        assert set(ref["latency_ms"]) >= {"median", "min", "max"}
    for g in ("encoder", "decoder"):
        assert result["graphs"][g]["gflops"] > 0 and result["graphs"][g]["fraction_of_ceiling"] > 0
    assert result["ceiling_gflops"]["fp32"] > 0 and result["ceiling_gflops"]["bf16"] > 0
    assert result["overhead"]["per_step_ms"] > 0
    json.loads(json.dumps(result))  # plain JSON, no numpy scalars


def test_baseline_is_measured_first_and_schedules_are_uniform(result):
    rows = result["rows"]
    assert [r["ratio"] for r in rows] == [0.0, 0.5, 0.75]  # 0 added: every speed-up divides by it
    assert [r["encoder_calls"] for r in rows] == [STEPS, 4, 2]  # i % R == 0 with R = 2, 4
    assert rows[1]["recompute"] == [0, 2, 4, 6] and rows[2]["recompute"] == [0, 4]
    assert rows[0]["speedup"] == 1.0 and rows[0]["ideal_speedup"] == 1.0


def test_ideal_and_efficiency_arithmetic(result, built):
    """Every ideal recomputed here from the per-call times and MACs with guidance-aware batches: a call on both CFG
    halves costs its full-batch time (2x the MACs), one on the conditional half its half-batch time (1x)."""
    arch = read(built).arch
    settings = read(built).sampler.with_overrides(num_steps=STEPS)
    grid = timesteps(STEPS, settings.last_step, settings.timeshift)
    lo, hi = np.float32(settings.interval_min), np.float32(settings.interval_max)
    guided = [bool(lo < grid[i] < hi) and settings.guidance != 1.0 for i in range(STEPS)]
    assert 0 < sum(guided) < STEPS and result["guided_steps"] == sum(guided)  # both kinds of step occur
    E, D = result["encoder_ms"], result["decoder_ms"]
    Eh, Dh = (stats["median"] for stats in (result["calls_ms"]["encoder_half"], result["calls_ms"]["decoder_half"]))
    Em, Dm = flops.encoder_macs(arch).total, flops.decoder_macs(arch).total

    def cost(e_both, e_half, d_both, d_half, steps, full=False):
        ends = [*steps[1:], STEPS]
        enc = sum(e_both if full or any(guided[r:n]) else e_half for r, n in zip(steps, ends))
        return enc + sum(d_both if full or g else d_half for g in guided)

    base = result["rows"][0]["latency_ms"]["median"]
    every = list(range(STEPS))
    for row in result["rows"]:
        steps, med, full = row["recompute"], row["latency_ms"]["median"], row["latency_full_cfg_ms"]["median"]
        assert row["speedup"] == pytest.approx(base / med)
        assert row["ideal_speedup"] == pytest.approx(cost(E, Eh, D, Dh, every) / cost(E, Eh, D, Dh, steps))
        assert row["efficiency"] == pytest.approx(row["speedup"] / row["ideal_speedup"])
        assert row["flop_ideal_speedup"] == pytest.approx(cost(2 * Em, Em, 2 * Dm, Dm, every) / cost(2 * Em, Em, 2 * Dm, Dm, steps))
        assert row["flop_efficiency"] == pytest.approx(row["speedup"] / row["flop_ideal_speedup"])
        assert row["predicted_ms"] == pytest.approx(cost(E, Eh, D, Dh, steps))
        assert row["skip_speedup"] == pytest.approx(full / med)
        assert row["skip_flop_ideal"] == pytest.approx(cost(2 * Em, Em, 2 * Dm, Dm, steps, True) / cost(2 * Em, Em, 2 * Dm, Dm, steps))
        assert row["skip_flop_ideal"] > 1.0
    macs = result["graphs"]["encoder"]["gmacs_per_call"]
    assert macs == pytest.approx(Em * result["cfg_batch"] / 1e9)
    assert result["graphs"]["encoder"]["gflops"] == pytest.approx(2 * macs / (E / 1e3))
    assert result["skip_vs_full_cfg_error"] < 1e-5  # the skip changes float rounding only


def test_backend_and_references_sample_the_same_thing(result):
    """Same noise, settings and weights: onnxruntime matches torch fp32; bf16 autocast is close, not equal."""
    assert result["latents_error_vs_torch_fp32"] < 1e-4
    bf16 = next(r for r in result["reference"] if r["name"] == "torch-bf16-autocast")
    assert 0 < bf16["error_vs_torch_fp32"] < 0.2


def test_the_timed_loop_is_the_users_loop_with_runners_made_once(built, monkeypatch):
    """`sample` is what runs; each backend makes one runner, outside the timed runs."""
    from ddt_export.backends.onnxruntime_backend import OnnxRuntimeBackend
    from ddt_export.backends.torch_backend import TorchBackend

    made, sampled = [], []
    for cls in (OnnxRuntimeBackend, TorchBackend):
        orig = cls.runner
        monkeypatch.setattr(cls, "runner", lambda self, b, _o=orig, _c=cls: made.append(_c.__name__) or _o(self, b))
    real_sample = bench.sample
    monkeypatch.setattr(bench, "sample", lambda *a, **k: sampled.append(a[4].num_steps) or real_sample(*a, **k))
    bench.run(built, bench.Options(ratios=(0.5,), steps=4, repeat=2, ceiling_size=64))
    assert made.count("OnnxRuntimeBackend") == 1 and made.count("TorchBackend") == 2
    # 3 warm-ups (3 steps), 6 overhead runs with no-op graphs, 2 repeats x (2 ratios x (skip, full CFG) + 2 references)
    assert sampled.count(4) == 6 + 2 * 6 and sampled.count(3) == 3


def test_loop_overhead_is_measured_with_noop_graphs(built):
    from ddt_export.backends import open_backend

    runner = open_backend("onnxruntime", read(built)).runner(2)
    noise = np.zeros((1, 4, 8, 8), np.float32)
    per_step = bench.loop_overhead(runner, noise, [1], 10, SamplerSettings(num_steps=5), repeat=2)
    assert 0 < per_step < 1.0  # seconds; a sanity bound, not a timing assertion


def test_ceiling_reports_both_precisions():
    c = ceiling.measure(threads=1, size=64, repeat=1)
    assert c["fp32"] > 0 and c["bf16"] > 0 and set(c["sources_gflops"]) == {"numpy_fp32", "torch_fp32", "torch_bf16"}


def test_cli_writes_json_and_png(built, tmp_path, bench_cli, monkeypatch):
    monkeypatch.setattr(ceiling, "SIZE", 64)
    out, png = tmp_path / "r" / "lat.json", tmp_path / "lat.png"
    r = bench_cli("latency", built, "--steps", 4, "--ratios", "0,0.5", "--repeat", 1, "--no-reference", "--sampler", "adams",
                  "--order", 3, "--labels", "7", "--batch", 2, "--json", out, "--plot", png)
    assert r.code == 0, r.err
    data = json.loads(out.read_text())
    assert [row["ratio"] for row in data["rows"]] == [0.0, 0.5] and data["reference"] == []
    assert (data["sampler"]["sampler"], data["sampler"]["order"]) == ("adams", 3)  # the timed loop ran the asked solver
    assert data["labels"] == [7, 7]  # given labels fill the batch in turn
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "speedup" in r.out and "loop overhead" in r.out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--ratios", "0,1.0"], "sharing ratio must be in [0, 1)"),
        (["--ratios", "-0.25"], "sharing ratio must be in [0, 1)"),
        (["--ratios", "0,half"], "--ratios must be comma-separated numbers"),
        (["--backend", "tensorflow"], "unknown backend 'tensorflow'"),
        (["--steps", "0"], "steps must be between 1 and 10,000"),
        (["--batch", "0"], "--batch must be between 1 and 1024"),
        (["--schedule", "random"], "unknown schedule 'random'"),
        (["--sampler", "heun"], "heun"),
        (["--labels", "1_0"], "--labels"),
        (["--labels", "seven"], "--labels"),  # the tiny test build has no names
        (["--sampler", "adams", "--order", "5"], "order"),
        (["--plot", "out.svg"], "--plot out.svg: expected a .png file name"),
    ],
)
def test_bad_input_is_one_line(built, bench_cli, args, message):
    r = bench_cli("latency", built, *args)
    assert r.code == 2
    assert r.err.startswith("error: ") and message in r.err and r.err.count("\n") == 1


def test_missing_build_is_one_line(tmp_path, bench_cli):
    r = bench_cli("latency", tmp_path / "nothing")
    assert r.code == 2 and "has no manifest.json" in r.err and r.err.count("\n") == 1


def test_labels_by_name_on_a_named_build(bundled_build, tmp_path, bench_cli, monkeypatch):
    """The bundled digits build names its classes: --labels takes them as generate does, and an unknown one is one line."""
    monkeypatch.setattr(ceiling, "SIZE", 64)
    out = tmp_path / "lat.json"
    r = bench_cli("latency", bundled_build, "--steps", 2, "--ratios", "0", "--repeat", 1, "--no-reference", "--batch", 3,
                  "--labels", "Seven; 0", "--json", out)
    assert r.code == 0, r.err
    assert json.loads(out.read_text())["labels"] == [7, 0, 7]
    r = bench_cli("latency", bundled_build, "--labels", "sevn", "--json", tmp_path / "x.json")
    assert r.code == 2 and 'no class is named "sevn"' in r.err and r.err.count("\n") == 1, r.err
    assert not (tmp_path / "x.json").exists()
