"""The time grid and each solver's per-step update: Euler, and the official Adams-Bashforth multistep sampler.

Both solvers step `x += dt * sum_j c[i][j] * v_(i-k+1+j)` over the last k guided velocities;
Euler is k = 1, c = 1. What differs is computed here, once per run, outside the loop:

- Euler (official `EulerSampler`): t at step i is the grid point t_i.
- Adams (official `AdamLMSampler`, `stateful_flow_matching/adam_sampling.py`): t starts at 0 and
  accumulates `t += dt` in float32, and the network and the strict guidance-interval test see
  that running sum, kept as the official computation because it is not always the grid point:
  each float32 difference is exact for neighbouring points within a factor of 2 (Sterbenz's
  lemma), but the sum of those differences can round up by an ulp (12 steps, last_step 0.04,
  timeshift 1.5: steps 2 and 3 sit one ulp above the grid). The coefficients of step
  i are the integrals over [t_i, t_(i+1)] of the Lagrange basis through the last k = min(order,
  i + 1) grid points, each divided by their sum (`pre_integral.lagrange_preint`): lower order
  at the first steps, and the wide last step (1 - t_(N-1)) extrapolated. The official code
  evaluates them in float32 and cancels catastrophically for orders 3-4 beyond ~100-250 steps
  (non-finite coefficients); here they are computed in float64 on a shifted variable, then
  rounded to float32 as the official loop multiplies them (equal to the official values
  wherever those are finite, to float32 rounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLERS = ("euler", "adams")
MAX_ORDER = 4  # the official pre_integral.py goes to order 4
ADAMS_DEFAULT_ORDER = 2  # AdamLMSampler's default


def timesteps(num_steps: int, last_step: float | None = None, timeshift: float = 1.0) -> np.ndarray:
    """The N + 1 time points (float32) of the official grid: linspace to 1 - last_step, then 1.

    Computed with torch's own float32 linspace, so the strict guidance-interval test sees the very
    same t as the official sampler: torch's kernel counts the first half up from 0 and the second
    half down from the end, and its AVX2 build fuses multiply-adds that its default build rounds
    separately (the C++ runtime reproduces both, runtime/src/time_grid.cpp).
    """
    import torch

    last = 1.0 / num_steps if last_step is None or num_steps == 1 else last_step
    t = torch.cat([torch.linspace(0.0, 1.0 - last, num_steps), torch.tensor([1.0])])  # N+1 float32
    return (t / (t + (1 - t) * timeshift)).numpy()


@dataclass(frozen=True)
class Steps:
    """What the loop needs per step i: the time the network sees, dt, and the multistep coefficients."""

    t: np.ndarray  # (N,) float32: fed to the encoder and compared with the guidance interval
    dt: np.ndarray  # (N,) float32: t_(i+1) - t_i on the grid
    coefficients: tuple[tuple[float, ...], ...]  # step i: k_i float32-exact weights of v_(i-k_i+1) .. v_i

    @property
    def history(self) -> int:
        """How many past guided velocities the loop must keep."""
        return max(len(c) for c in self.coefficients)


def plan_steps(num_steps: int, last_step: float | None, timeshift: float, sampler: str = "euler", order: int = 1) -> Steps:
    grid = timesteps(num_steps, last_step, timeshift)  # N+1 float32
    dt = (grid[1:] - grid[:-1]).astype(np.float32)  # float32 differences, as the official timedeltas
    if sampler == "euler":
        return Steps(grid[:-1].copy(), dt, ((1.0,),) * num_steps)
    t = np.zeros(num_steps, np.float32)
    for i in range(1, num_steps):  # the official `t_cur += dt`, in float32
        t[i] = np.float32(t[i - 1] + dt[i - 1])
    return Steps(t, dt, tuple(adams_coefficients(grid, i, min(order, i + 1)) for i in range(num_steps)))


def adams_coefficients(grid: np.ndarray, i: int, k: int) -> tuple[float, ...]:
    """Weights of v at grid[i-k+1..i] for the step [grid[i], grid[i+1]], in float64, rounded to float32.

    Integrated on u = t - t_i (nodes near 0, upper limit h = the step): the same polynomials as the
    official closed forms, without their cancellation between large powers of t.
    """
    a, b = float(grid[i]), float(grid[i + 1])
    nodes = [float(grid[m]) - a for m in range(i - k + 1, i + 1)]  # oldest first, as pred_trajectory[-k:]
    h = b - a
    ints = []
    for j, uj in enumerate(nodes):
        others = [u for m, u in enumerate(nodes) if m != j]
        poly = np.polynomial.Polynomial.fromroots(others) if others else np.polynomial.Polynomial([1.0])
        denom = float(np.prod([uj - u for u in others])) if others else 1.0
        antideriv = poly.integ()
        ints.append((antideriv(h) - antideriv(0.0)) / denom)
    total = 0.0
    for v in ints:  # left to right, as the C++ port: Python 3.12's sum() compensates and may differ by an ulp
        total += v
    return tuple(float(np.float32(v / total)) for v in ints)
