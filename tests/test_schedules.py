"""Schedules: explicit lists, uniform sharing, and the DP against the official loops and brute force."""

import itertools

import numpy as np
import pytest

from ddt_export import schedules
from ddt_export.errors import DDTError
from tests.reference.official_ddt import official_dp


def random_similarity(n: int, seed: int, dtype=np.float32) -> np.ndarray:
    """A plausible similarity: decays with step distance, noisy, symmetric, ones on the diagonal."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    sim = np.exp(-np.abs(i[:, None] - i[None]) / rng.uniform(2, 30)) + 0.05 * rng.standard_normal((n, n))
    sim = (sim + sim.T) / 2
    np.fill_diagonal(sim, 1.0)
    return sim.astype(dtype)


def cost(sim, steps):
    n, total = len(sim), 0.0
    bounds = list(steps) + [n]
    for j, end in zip(bounds, bounds[1:]):
        total += sum(1 - float(sim[m][j]) for m in range(j, end))
    return total


@pytest.mark.parametrize("n,k", [(10, 1), (10, 4), (10, 10), (50, 13), (250, 125), (250, 83), (250, 31), (251, 50)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dp_equals_official(n, k, dtype):
    sim = random_similarity(n, seed=n * 1000 + k, dtype=dtype)
    assert schedules.dp(sim, k) == official_dp(sim, k)


def test_dp_ties_break_like_the_official_loop():
    sim = np.ones((8, 8), np.float32)  # every schedule costs zero: the first minimum must win
    assert schedules.dp(sim, 3) == official_dp(sim, 3)


@pytest.mark.parametrize("seed", range(4))
def test_dp_is_optimal_by_brute_force(seed):
    n = 9
    sim = random_similarity(n, seed, np.float64)
    for k in range(1, n + 1):
        best = min(cost(sim, (0, *rest)) for rest in itertools.combinations(range(1, n), k - 1))
        got = schedules.dp(sim, k)
        assert len(got) == k and got[0] == 0 and got == sorted(set(got))
        assert cost(sim, got) == pytest.approx(best, abs=1e-12)


def test_uniform_follows_the_refresh_rates_of_the_paper():
    assert [schedules.refresh_rate(r) for r in (0.5, 0.66, 0.75, 0.8, 0.83, 0.87)] == [2, 3, 4, 5, 6, 8]
    assert schedules.uniform(10, 0.75) == [0, 4, 8]
    assert schedules.budget(250, 0.75) == 62
    assert schedules.evenly_spaced(12, 4) == [0, 3, 6, 9]


def test_resolve():
    assert schedules.resolve(5) == [0, 1, 2, 3, 4]
    assert schedules.resolve(5, ratio=0.0) == [0, 1, 2, 3, 4]
    assert schedules.resolve(8, recompute=[0, 3]) == [0, 3]
    assert schedules.resolve(8, ratio=0.5, method="uniform") == [0, 2, 4, 6]
    sim = random_similarity(8, 0)
    assert schedules.resolve(8, ratio=0.5, method="dp", sim=sim) == official_dp(sim, 4)


@pytest.mark.parametrize(
    "kwargs,words",
    [
        (dict(recompute=[1, 2]), "start at step 0"),
        (dict(recompute=[0, 3, 2]), "strictly increasing"),
        (dict(recompute=[0, 3, 3]), "strictly increasing"),
        (dict(recompute=[0, 8]), "out of range"),
        (dict(ratio=1.0), r"\[0, 1\)"),
        (dict(ratio=-0.1), r"\[0, 1\)"),
        (dict(ratio=0.5, method="dp"), "calibrate"),
        (dict(ratio=0.5, method="cosine"), "unknown schedule"),
        (dict(ratio=0.5, recompute=[0]), "not both"),
    ],
)
def test_bad_schedules(kwargs, words):
    with pytest.raises(DDTError, match=words):
        schedules.resolve(8, **kwargs)


def test_bad_budgets_and_matrices():
    sim = random_similarity(6, 0)
    for k in (0, 7):
        with pytest.raises(DDTError, match="budget"):
            schedules.dp(sim, k)
    with pytest.raises(DDTError, match="square"):
        schedules.dp(np.ones((3, 4)), 1)
    with pytest.raises(DDTError, match="finite"):
        schedules.dp(np.full((3, 3), np.nan), 1)


def test_similarity_of_identical_states_is_one():
    s = np.random.default_rng(0).standard_normal((1, 2, 5, 8)).astype(np.float32)
    states = np.concatenate([s, s, -s])  # steps 0 and 1 equal, step 2 opposite
    sim = schedules.similarity(states)
    np.testing.assert_allclose(sim, [[1, 1, -1], [1, 1, -1], [-1, -1, 1]], atol=1e-6)
