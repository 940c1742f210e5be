"""The quality benchmark's judge: independent of the DDT, exact on real digits, a Frechet distance that behaves."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from ddt_export.bench.quality import Judge, bootstrap_frechet, frechet_distance, to_digit_space
from ddt_export.errors import DDTError


@pytest.fixture(scope="module")
def judge():
    return Judge()


def real_as_samples() -> np.ndarray:
    """The real digits as the model sees them: bilinear 8x8 -> 16x16, scaled to [-1, 1]."""
    d = torch.from_numpy(load_digits().data.astype(np.float32)).reshape(-1, 1, 8, 8) / 8.0 - 1.0
    return F.interpolate(d, size=(16, 16), mode="bilinear", align_corners=False).numpy()


def test_inverse_upsampling_recovers_the_real_digits():
    np.testing.assert_allclose(to_digit_space(real_as_samples()), load_digits().data, atol=1e-3)


def test_judge_recognises_real_digits_through_the_model_space(judge):
    x = to_digit_space(real_as_samples())
    assert (judge.predict(x) == load_digits().target).mean() > 0.98


def test_frechet_distance(judge):
    real = judge.features(judge.real)
    assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-6)
    rng = np.random.default_rng(0)
    noise = judge.features(rng.uniform(0, 16, (1797, 64)))
    blurred = judge.features(np.clip(judge.real + rng.normal(0, 2, judge.real.shape), 0, 16))
    assert 0 < frechet_distance(blurred, real) < frechet_distance(noise, real)


def scipy_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook FID formula with scipy's sqrtm of the covariance product, as FID code computes it."""
    from scipy import linalg

    eps = 1e-6 * np.eye(a.shape[1])
    sa, sb = np.cov(a, rowvar=False) + eps, np.cov(b, rowvar=False) + eps
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(sa + sb - 2 * linalg.sqrtm(sa @ sb).real))


@pytest.mark.parametrize("space", ["mlp", "pca16", "pixels"])
def test_frechet_distance_equals_the_sqrtm_formula(judge, space):
    """The eigenvalue form (one symmetric eigensolve) gives the textbook sqrtm formula's value in every judge's space."""
    from ddt_export.bench.judges import FeatureSpaces, gaussian

    spaces = FeatureSpaces(judge)
    rng = np.random.default_rng(2)
    for sigma in (0.5, 2.0, 6.0):
        fake = np.clip(judge.real[:300] + rng.normal(0, sigma, (300, 64)), 0, 16)
        a, b = spaces(fake)[space], spaces(judge.real)[space]
        want = scipy_frechet(a, b)
        assert frechet_distance(a, b) == pytest.approx(want, rel=1e-7)
        assert frechet_distance(a, gaussian(b)) == frechet_distance(a, b)


def test_refuses_other_models():
    with pytest.raises(DDTError, match="1 x 16 x 16"):
        to_digit_space(np.zeros((2, 4, 8, 8), np.float32))


def test_bootstrap_is_paired_and_has_spread(judge):
    """Resamples are shared across sets: identical sets differ by exactly 0, a worse set is worse on every resample."""
    real = judge.features(judge.real)
    rng = np.random.default_rng(1)
    good = judge.features(np.clip(judge.real[:500] + rng.normal(0, 1, (500, 64)), 0, 16))
    bad = judge.features(np.clip(judge.real[:500] + rng.normal(0, 4, (500, 64)), 0, 16))
    boot = bootstrap_frechet([good, good.copy(), bad], real, resamples=20)
    assert boot.shape == (3, 20)
    np.testing.assert_array_equal(boot[0], boot[1])
    assert boot[0].std() > 0
    assert (boot[2] > boot[0]).all()


def test_cli_writes_json_and_png_and_reports_progress_in_a_log(bundled_build, bench_cli, tmp_path):
    """`ddt-bench quality` end to end on the bundled build, output not a terminal (CI, a log file)."""
    out, png = tmp_path / "q.json", tmp_path / "q.png"
    r = bench_cli("quality", bundled_build, "--samples", 20, "--steps", 4, "--ratios", "0,0.75", "--json", out, "--plot", png)
    assert r.code == 0, r.err
    res = json.loads(out.read_text())
    assert [(row["ratio"], row["schedule"], row["encoder_calls"]) for row in res["rows"]] == [
        (0.0, "none", 4), (0.75, "uniform", 1), (0.75, "dp", 1)]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a 20-minute run must show where it is even without a spinner, one line per configuration
    assert [line for line in r.err.splitlines() if line.startswith("ratio")] == [
        "ratio 0.00 (no sharing)", "ratio 0.75 uniform", "ratio 0.75 dp"]
    assert "paired diff: mlp [95% CI] / pca16 / pixels" in r.out  # the table is not wrapped at 80 columns in a log


def test_verdict_needs_every_space_and_every_seed():
    from ddt_export.bench.quality import verdict

    def space(lo, hi, *seeds):
        return {"ci95": [lo, hi], "per_seed": {str(i): v for i, v in enumerate(seeds)}}

    assert verdict({"a": space(-0.2, -0.1, -0.1, -0.2), "b": space(-0.3, -0.1, -0.2, -0.1)}) == "lower"
    assert verdict({"a": space(-0.2, -0.1, -0.1, -0.2), "b": space(0.1, 0.3, 0.2, 0.1)}) == "mixed"
    assert verdict({"a": space(-0.2, -0.1, -0.1, 0.05)}) == "mixed"  # one seed disagrees
    assert verdict({"a": space(-0.1, 0.1, 0.0, 0.0), "b": space(-0.2, 0.1, -0.1, 0.1)}) == "tie"


def test_every_row_is_judged_in_three_spaces_over_two_seeds_with_equal_call_dp_and_a_precision_axis(bundled_build, tmp_path):
    """fp32 sharing rows + DP at uniform's calls + bf16 (OpenVINO) rows, each compared with fp32 in every space."""
    from ddt_export.bench import quality

    # 8 steps at ratio 0.66 (refresh rate 3): the DP's budget is 8 // 3 = 2 calls, uniform runs steps 0, 3, 6
    opts = quality.Options(samples=10, steps=8, ratios=(0.0, 0.66), precisions=("fp32", "bf16"), precision_ratios=(0.0,),
                           seeds=(0, 1), resamples=10)
    res = quality.run(bundled_build, opts)
    rows = {(r["precision"], r["ratio"], r["schedule"]): r for r in res["rows"]}
    assert set(rows) == {("fp32", 0.0, "none"), ("fp32", 0.66, "uniform"), ("fp32", 0.66, "dp"), ("fp32", 0.66, "dp@uniform"),
                         ("bf16", 0.0, "none")}
    assert rows[("fp32", 0.66, "dp")]["encoder_calls"] == 2 < rows[("fp32", 0.66, "uniform")]["encoder_calls"] == 3
    assert rows[("fp32", 0.66, "dp@uniform")]["encoder_calls"] == 3  # DP at uniform's budget
    for r in res["rows"]:
        assert set(r["frechet_by_space"]) == {"mlp", "pca16", "pixels"} == set(r["frechet_std_by_space"])
        assert set(r["per_seed"]) == {"0", "1"}
        assert r["frechet"] == r["frechet_by_space"]["mlp"]
    assert rows[("bf16", 0.0, "none")]["backend"] == "openvino"
    bf16 = res["precision_vs_fp32"]["bf16 0 none"]
    assert set(bf16["by_space"]) == {"mlp", "pca16", "pixels"}
    for v in bf16["by_space"].values():  # bf16 matmuls move 10 digits' Frechet distance by far less than 10%
        assert abs(v["rel"]) < 0.1 and v["ci95"][0] <= v["ci95"][1]
    assert res["dp_equal_calls_vs_uniform"]["0.66"]["calls"] == [3, 3]
    assert res["dp_vs_uniform"]["0.66"]["verdict"] in ("lower", "higher", "tie", "mixed")
    png = tmp_path / "q.png"
    quality.plot(res, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from rich.console import Console

    with Console(width=250, record=True, file=open(tmp_path / "t.txt", "w")) as c:
        c.print(quality.table(res))
    assert "dp@uniform" in (tmp_path / "t.txt").read_text()


@pytest.mark.parametrize("args, message", [
    (["quality", "--seed", "1_0"], "--seed must be a whole number"),
    (["quality", "--seed", "-1"], "--seed must be a whole number from 0 to 2^64 - 1"),
    (["quality", "--seed", "18446744073709551615"], "distinct and at most 2^64 - 1"),  # the default second seed wraps
    (["quality", "--seeds", "0,0"], "distinct"),
    (["quality", "--seeds", "0,,1"], "--seeds has an empty entry"),
    (["quality", "--samples", "\uff12\uff10"], "--samples must be a whole number of ASCII digits"),  # full-width 20
    (["quality", "--steps", "1_6"], "--steps must be a whole number"),
    (["latency", "--steps", "+8"], "--steps must be a whole number"),
    (["latency", "--batch", "1_0"], "--batch must be a whole number"),
])
def test_whole_numbers_follow_the_one_grammar(bundled_build, bench_cli, tmp_path, args, message):
    """ddt-bench reads every whole number as ddt-export does (labels.py): click's int would take 1_0 and full-width digits."""
    r = bench_cli(args[0], bundled_build, *args[1:], "--json", tmp_path / "x.json")
    assert r.code == 2 and message in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not (tmp_path / "x.json").exists()
