"""The solver axis of `ddt-bench quality` (issue 22): solvers named and keyed, the +3% rule applied in every space and
every seed, the fewest calls within it, and the judge-free fidelity to a converged reference, end to end."""

import json

import numpy as np
import pytest

from ddt_export.bench.quality_frontier import WITHIN, baseline_config, frontier, relative_l2
from ddt_export.bench.quality_rows import Config, Row, Sampling, Scores, Solver
from ddt_export.errors import DDTError

SPACES = ("mlp", "pca16", "pixels")


@pytest.mark.parametrize("text, sampler, order, name", [("euler", "euler", 1, "euler"), ("adams2", "adams", 2, "adams2"),
                                                        (" Adams4 ", "adams", 4, "adams4"), ("adams1", "adams", 1, "adams1")])
def test_solver_names(text, sampler, order, name):
    s = Solver.parse(text, 16)
    assert (s.sampler, s.order, s.steps, s.name, str(s)) == (sampler, order, 16, name, f"{name} 16")


@pytest.mark.parametrize("text", ["adams5", "adams0", "adams", "heun", "euler2", ""])
def test_unknown_solvers_are_refused(text):
    with pytest.raises(DDTError, match="unknown solver"):
        Solver.parse(text, 8)


def test_keys_stay_as_before_without_the_solver_axis():
    assert Config("fp32", 0.75, "dp").key == "fp32 0.75 dp"
    assert Config("fp32", 0.75, "dp", Solver("adams", 2, 16)).key == "fp32 0.75 dp adams2 16"
    assert Config("fp32", 0.0, "uniform", Solver("euler", 1, 250)).key == "fp32 0 none euler 250"
    assert baseline_config("euler:250") == Config("fp32", 0.0, "uniform", Solver("euler", 1, 250))


@pytest.mark.parametrize("text", ["euler", "euler:", "euler:0", "euler:-3", "euler:x", "heun:10"])
def test_bad_baselines_are_refused(text):
    with pytest.raises(DDTError):
        baseline_config(text)


def row(solver: Solver, frechet: dict, ratio: float = 0.0, schedule: str = "uniform", calls: int | None = None) -> Row:
    """A synthetic row whose per-seed distances are `frechet[seed][space]` (pooled: their mean)."""
    pooled = {k: float(np.mean([f[k] for f in frechet.values()])) for k in SPACES}
    recompute = list(range(calls if calls is not None else solver.steps))
    return Row(Config("fp32", ratio, schedule, solver), Sampling(recompute, 0.0, "test", solver.steps),
               Scores(1.0, [1.0] * 10, pooled, {sd: dict(f) for sd, f in frechet.items()}))


def boot_of(rows: list[Row]) -> dict:
    """A degenerate bootstrap (every resample the pooled value): the verdicts then rest on the pooled and per-seed values."""
    return {k: np.array([[r.scores.frechet_by_space[k]] * 4 for r in rows]) for k in SPACES}


def same(value: float, **override) -> dict:
    return {0: {k: override.get(k, value) for k in SPACES}, 1: {k: value for k in SPACES}}


def test_within_means_every_space_and_every_seed():
    base = row(Solver("euler", 1, 250), same(10.0))
    rows = [base,
            row(Solver("adams", 2, 8), same(10.2)),  # +2% everywhere: within
            row(Solver("adams", 2, 5), same(10.2, pixels=10.8)),  # seed 0 pixels +8% (pooled +5%): not within
            row(Solver("euler", 1, 25), same(10.0, pca16=10.5)),  # pooled pca16 +2.5% but seed 0 +5%: not within
            row(Solver("euler", 1, 50), same(9.0)),  # better than the baseline is within
            row(Solver("adams", 3, 10), same(11.0))]  # +10%: not within
    f = frontier(rows, boot_of(rows), baseline_config("euler:250"))
    within = {k: v["within"] for k, v in f["vs_baseline"].items()}
    assert within == {"fp32 0 none adams2 8": True, "fp32 0 none adams2 5": False, "fp32 0 none euler 25": False,
                      "fp32 0 none euler 50": True, "fp32 0 none adams3 10": False}
    assert f["vs_baseline"]["fp32 0 none euler 25"]["within_every_space"] is True  # the seed alone decides it
    assert f["vs_baseline"]["fp32 0 none adams2 8"]["by_space"]["mlp"]["rel"] == pytest.approx(0.02)
    assert f["fewest_calls"] == {"euler": {"row": "fp32 0 none euler 50", "network_calls": 50, "encoder_calls": 50},
                                 "adams2": {"row": "fp32 0 none adams2 8", "network_calls": 8, "encoder_calls": 8},
                                 "adams3": None}
    assert f["baseline"] == "fp32 0 none euler 250" and f["baseline_solver"] == "euler 250" and f["within"] == WITHIN


def test_sharing_is_priced_against_its_own_solver_and_steps():
    rows = [row(Solver("euler", 1, 250), same(10.0)),
            row(Solver("adams", 2, 16), same(10.0)),
            row(Solver("adams", 2, 16), same(10.2), ratio=0.75, schedule="uniform", calls=4),  # +2%: within
            row(Solver("adams", 2, 16), same(10.5), ratio=0.75, schedule="dp", calls=4),  # +5%: not within
            row(Solver("adams", 2, 8), same(12.0)),
            row(Solver("adams", 2, 8), same(12.1), ratio=0.75, schedule="uniform", calls=2)]  # +0.8% of its own: within
    f = frontier(rows, boot_of(rows), baseline_config("euler:250"))
    assert set(f["sharing_vs_none"]) == {"fp32 0.75 uniform adams2 16", "fp32 0.75 dp adams2 16", "fp32 0.75 uniform adams2 8"}
    assert f["sharing_vs_none"]["fp32 0.75 uniform adams2 8"]["by_space"]["pca16"]["rel"] == pytest.approx(0.1 / 12)
    assert f["largest_ratio_within"] == {"adams2 uniform": 0.75, "adams2 dp": 0.0}
    # with sharing the fewest calls within +3% of the baseline: 16 steps at 4 encoder calls beats none at 16
    assert f["fewest_calls"]["adams2"] == {"row": "fp32 0.75 uniform adams2 16", "network_calls": 16, "encoder_calls": 4}


def test_a_run_without_the_baseline_row_is_refused():
    rows = [row(Solver("euler", 1, 8), same(10.0))]
    with pytest.raises(DDTError, match="baseline"):
        frontier(rows, boot_of(rows), baseline_config("euler:250"))


def test_relative_l2():
    ref = np.ones((2, 1, 4, 4), np.float32)
    x = ref.copy()
    x[1] *= 1.5
    np.testing.assert_allclose(relative_l2(x, ref), [0.0, 0.5])


def test_cli_frontier_end_to_end(bundled_build, bench_cli, tmp_path):
    """Two solvers at two step counts with and without sharing, a baseline and a converged reference, on the bundled
    build: rows keyed by solver, the verdicts consistent with their own numbers, fidelity falling with steps."""
    out, png = tmp_path / "f.json", tmp_path / "f.png"
    r = bench_cli("quality", bundled_build, "--samples", 20, "--solvers", "euler,adams2", "--step-counts", "4,8",
                  "--ratios", "0,0.75", "--no-equal-calls", "--baseline", "euler:16", "--reference-steps", 64,
                  "--fidelity-samples", 4, "--json", out, "--plot", png)
    assert r.code == 0, r.err
    res = json.loads(out.read_text())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keys = {row["solver"] + f" {row['steps']} {row['ratio']:g} {row['schedule']}" for row in res["rows"]}
    assert keys == {f"{s} {n} {ratio}" for s in ("euler", "adams2") for n in (4, 8) for ratio in ("0 none", "0.75 uniform", "0.75 dp")} | {
        "euler 16 0 none"}
    by_key = {f"{row['solver']} {row['steps']} {row['ratio']:g} {row['schedule']}": row for row in res["rows"]}
    assert by_key["adams2 8 0 none"]["order"] == 2 and by_key["adams2 8 0 none"]["network_calls"] == 8
    assert by_key["euler 8 0.75 uniform"]["encoder_calls"] == 2
    f = res["frontier"]
    for key, v in f["vs_baseline"].items():
        ok = all(s["rel"] <= WITHIN for s in v["by_space"].values()) and all(
            rel <= WITHIN for per in v["rel_by_seed"].values() for rel in per.values())
        assert v["within"] == ok, key
    for solver, best in f["fewest_calls"].items():
        inside = [v["network_calls"] for k, v in f["vs_baseline"].items() if v["within"] and k.split()[3] == solver]
        assert (best is None and not inside) or best["network_calls"] == min(inside)
    # the reference is converged (twice its steps moves it little) and every row's fidelity is measured against it
    assert res["reference"]["steps"] == 64 and res["reference"]["moved_at_twice_the_steps"] < 0.02
    assert by_key["euler 8 0 none"]["fidelity"] < by_key["euler 4 0 none"]["fidelity"]
    assert by_key["adams2 8 0 none"]["fidelity"] < by_key["euler 8 0 none"]["fidelity"]
    assert "fewest network calls within +3%" in r.out


@pytest.mark.parametrize("args, message", [
    (["--solvers", "adams7"], "unknown solver"),
    (["--solvers", "euler", "--baseline", "euler"], "--baseline must be SOLVER:STEPS"),
    (["--solvers", "euler", "--step-counts", "4,x"], "--step-counts"),
    (["--solvers", "euler", "--step-counts", "4", "--reference-steps", 16, "--fidelity-samples", 50], "--fidelity-samples"),
    (["--solvers", "euler,adams2", "--precisions", "fp32,int8"], "fp32"),
])
def test_bad_solver_axis_input_is_one_line(bundled_build, bench_cli, tmp_path, args, message):
    r = bench_cli("quality", bundled_build, "--samples", 20, *args, "--json", tmp_path / "x.json")
    assert r.code == 2 and message in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not (tmp_path / "x.json").exists()


def test_rows_sample_at_the_runs_guidance(bundled_build):
    """--cfg reaches every row (a --cfg 4 run once sampled its rows at the build's guidance 2, only the reference at 4)."""
    from ddt_export.bench.quality_rows import Inputs, sample_config
    from ddt_export.pipeline import Pipeline

    pipe = Pipeline.load(bundled_build, backend="onnxruntime")
    inputs = Inputs.make(10, (0,), pipe.arch.latent_shape)
    config = Config("fp32", 0.0, "uniform", Solver("adams", 2, 4))
    got, _ = sample_config(pipe, config, inputs, pipe.defaults.with_overrides(guidance=4.0), 10)
    want = pipe.generate(inputs.labels, noise=inputs.noises[0], num_steps=4, sampler="adams", order=2, guidance=4.0).latents
    np.testing.assert_array_equal(got, want)
