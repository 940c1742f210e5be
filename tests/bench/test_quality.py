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
    assert "DP - uniform [95% CI]" in r.out  # the table is not wrapped at 80 columns in a log
