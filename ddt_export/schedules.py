"""Which sampling steps run the encoder: explicit lists, uniform sharing, and the statistical DP.

Official semantics: a schedule is the sorted list of recompute steps Φ, always starting at
0; budget K = |Φ|; sharing ratio r = 1 - K/N. The paper's ratios come from refresh rates
R = 2, 3, 4, 5, 6, 8 (0.50 ... 0.87): uniform recomputes when i % R == 0, and the DP gets
K = int(N / R), as in the paper's Table 4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import DDTError

METHODS = ("dp", "uniform")
MAX_DP_STEPS = 2000  # 8x the official 250 steps; the DP costs K N^2 (4000 x 4000 at K = 2000 is minutes, unbounded above)
PAPER_RATIOS = (0.0, 0.5, 0.66, 0.75, 0.8, 0.83, 0.87)  # refresh rates 1, 2, 3, 4, 5, 6, 8: the paper's Table 4


def check_recompute(steps: Sequence[int], num_steps: int) -> list[int]:
    """An explicit recompute list, validated: starts at 0, strictly increasing, below N."""
    if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in steps):
        raise DDTError(f"recompute steps must be whole numbers (got {list(steps)[:5]})")
    steps = [int(s) for s in steps]
    if not steps or steps[0] != 0:
        raise DDTError(f"recompute list must start at step 0 (got {steps[:5]}); the first step has no state to reuse")
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise DDTError(f"recompute list must be strictly increasing (got {steps})")
    if steps[-1] >= num_steps:
        raise DDTError(f"recompute step {steps[-1]} is out of range for {num_steps} steps (valid: 0..{num_steps - 1})")
    return steps


def check_ratio(ratio: float) -> float:
    if not 0.0 <= ratio < 1.0:
        raise DDTError(f"sharing ratio must be in [0, 1) (got {ratio}); 0 runs the encoder at every step")
    return float(ratio)


def refresh_rate(ratio: float) -> int:
    """R for a sharing ratio: the encoder runs every R steps (0.75 -> 4, 0.83 -> 6, 0.87 -> 8)."""
    return max(1, round(1.0 / (1.0 - check_ratio(ratio))))


def uniform(num_steps: int, ratio: float) -> list[int]:
    """The official uniform sharing: recompute when i % R == 0."""
    R = refresh_rate(ratio)
    return list(range(0, num_steps, R))


def evenly_spaced(num_steps: int, budget: int) -> list[int]:
    """Uniform sharing at an exact budget K: steps floor(k N / K); equals i % R == 0 when K = N / R."""
    if not 1 <= budget <= num_steps:
        raise DDTError(f"budget must be between 1 and the number of steps {num_steps} (got {budget})")
    return [k * num_steps // budget for k in range(budget)]


def budget(num_steps: int, ratio: float) -> int:
    """The DP's K at a sharing ratio: int(N / R), at least 1."""
    return max(1, num_steps // refresh_rate(ratio))


def similarity(states: np.ndarray) -> np.ndarray:
    """(N, B, L, D) states of a full run -> (N, N) cosine similarity averaged over B*L tokens."""
    N, B, L, D = states.shape
    X = np.asarray(states, dtype=np.float32).reshape(N, B * L, D)
    X = X / np.linalg.norm(X, axis=-1, keepdims=True)  # unit token vectors
    X = X.reshape(N, B * L * D)
    # sum over tokens of <a_tok, b_tok> is one dot product of the flattened unit vectors
    return (X.astype(np.float64) @ X.T.astype(np.float64) / (B * L)).astype(np.float32)


def check_similarity(sim: np.ndarray) -> np.ndarray:
    sim = np.asarray(sim)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1] or sim.shape[0] < 1:
        raise DDTError(f"similarity must be a square N x N matrix (got shape {sim.shape})")
    if not np.issubdtype(sim.dtype, np.floating) or not np.isfinite(sim).all():
        raise DDTError("similarity must hold finite floating-point values")
    return sim


def dp(sim: np.ndarray, num_recompute: int, progress=None) -> list[int]:
    """The statistical DP: K recompute steps minimising the summed dissimilarity of reused states.

    E[i][j] = sum over m = j..i of (1 - sim[m][j]) is the cost of steps j..i reusing the state
    computed at j. C[1][i] = E[i-1][0]; C[k][i] = min over j in [k-1, i-1] of C[k-1][j] +
    E[i-1][j], ties to the smallest j (the official loop's strict `<`); backtrack from C[K][N].
    Vectorised over (i, j) per k; values and tie-breaks equal the official Python loops. `progress(k, K)` after each k.
    """
    sim = check_similarity(sim)
    N, K = sim.shape[0], int(num_recompute)
    if N > MAX_DP_STEPS:
        raise DDTError(f"DP schedules take at most {MAX_DP_STEPS:,} steps (got {N}); use the uniform schedule for longer runs")
    if not 1 <= K <= N:
        raise DDTError(f"budget must be between 1 and the number of steps {N} (got {K})")
    err = np.tril(1 - sim).astype(np.float64)  # 1 - sim in the matrix's own dtype, as the official
    E = np.cumsum(err, axis=0)  # E[i][j] = sum_{m<=i} err[m][j] = sum_{m=j..i} for j <= i
    C = np.full((K + 1, N + 1), np.inf)
    P = np.full((K + 1, N + 1), -1, dtype=np.int64)
    C[1, 1:] = E[:, 0]  # C[1][i] = E[i-1][0]
    P[1, 1:] = 0
    j = np.arange(N + 1)
    for k in range(2, K + 1):
        i = np.arange(k, N + 1)[:, None]  # the i of C[k][i]
        # cand[i, j] = C[k-1][j] + E[i-1][j] for k-1 <= j <= i-1, inf elsewhere
        Ei = np.pad(E[i[:, 0] - 1], ((0, 0), (0, 1)), constant_values=np.inf)  # rows E[i-1], j up to N
        cand = np.where((j >= k - 1) & (j <= i - 1), C[k - 1][None, :] + Ei, np.inf)
        P[k, k:] = np.argmin(cand, axis=1)  # first minimum, as the official strict `<`
        C[k, k:] = cand[np.arange(len(i)), P[k, k:]]
        if progress is not None:
            progress(k, K)
    steps = [N]
    for k in range(K, 0, -1):
        steps.append(int(P[k, steps[-1]]))
    return steps[::-1][:-1]  # K steps starting at 0 (the trailing N is the sentinel)


def at_budget(sim: np.ndarray, budget: int, method: str = "dp", progress=None) -> list[int]:
    """K recompute steps for an N x N similarity matrix: the DP's, or evenly spaced (`ddt-export schedule`)."""
    sim = check_similarity(sim)
    if method not in METHODS:
        raise DDTError(f"unknown method {method!r}; choose {' or '.join(METHODS)}")
    return dp(sim, budget, progress) if method == "dp" else evenly_spaced(sim.shape[0], budget)


@dataclass(frozen=True)
class Request:
    """Which steps a user asked to run the encoder at: an explicit list, a sharing ratio by a method, or
    neither (every step). The one place that checks and resolves these; everything else holds a Request."""

    recompute: tuple[int, ...] | None = None
    ratio: float | None = None
    method: str = "dp"

    def __post_init__(self) -> None:
        if self.recompute is not None and self.ratio is not None:
            raise DDTError("give either a recompute list or a sharing ratio, not both")
        if self.ratio is not None:
            if isinstance(self.ratio, bool) or not isinstance(self.ratio, (int, float, np.floating)) or not math.isfinite(self.ratio):
                raise DDTError(f"sharing ratio must be a number in [0, 1) (got {self.ratio!r})")
            check_ratio(self.ratio)
        if self.method not in METHODS:
            raise DDTError(f"unknown schedule {self.method!r}; choose {' or '.join(METHODS)}")
        if self.recompute is not None:
            object.__setattr__(self, "recompute", tuple(check_recompute(self.recompute, MAX_STEP_INDEX)))

    @property
    def sharing(self) -> bool:
        return self.recompute is not None or bool(self.ratio)

    @property
    def needs_similarity(self) -> bool:
        """A DP schedule: it needs the calibrated similarity matrix of the run's settings."""
        return self.recompute is None and bool(self.ratio) and self.method == "dp"

    @property
    def label(self) -> str:
        """"all", "explicit", "uniform" or "dp": what the steps came from."""
        return "explicit" if self.recompute is not None else (self.method if self.ratio else "all")

    def resolve(self, num_steps: int, sim: np.ndarray | None = None) -> list[int]:
        """The recompute steps for a run of `num_steps`; a DP needs `sim` measured at exactly that many steps."""
        if self.recompute is not None:
            return check_recompute(self.recompute, num_steps)
        if not self.ratio:
            return list(range(num_steps))
        if self.method == "uniform":
            return uniform(num_steps, self.ratio)
        if sim is None:
            raise DDTError(f"DP schedule needs a similarity matrix for {num_steps} steps; run `ddt-export calibrate BUILD --steps "
                           f"{num_steps}` with the run's other settings (--cfg, --interval, --timeshift, --sampler, --order) first")
        if sim.shape[0] != num_steps:
            raise DDTError(f"similarity matrix is for {sim.shape[0]} steps, not {num_steps}; calibrate for {num_steps} steps")
        return dp(sim, budget(num_steps, self.ratio))


MAX_STEP_INDEX = 1 << 62  # explicit lists are checked against the run's step count when resolved


def resolve(
    num_steps: int,
    *,
    recompute: Sequence[int] | None = None,
    ratio: float | None = None,
    method: str = "dp",
    sim: np.ndarray | None = None,
) -> list[int]:
    """The recompute steps for a run (see `Request`)."""
    return Request(None if recompute is None else tuple(recompute), ratio, method).resolve(num_steps, sim)
