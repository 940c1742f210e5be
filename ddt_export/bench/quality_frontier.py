"""The solver frontier of `ddt-bench quality`: how few network calls give the baseline's samples.

Two measures per row, both paired over the same noise:
- judged: the Frechet distance in every feature space relative to the baseline row (e.g. Euler at 250
  steps, the official FID protocol), and whether it is within +3% in every space and every seed;
- judge-free fidelity: the mean relative L2 distance of each final latent to a converged reference
  solution from the same noise (Euler at many steps, no sharing), whose own convergence is shown by
  the move of the reference at twice its steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import DDTError
from ..labels import whole
from .quality_compare import _paired
from .quality_rows import Config, Inputs, Row, Solver

WITHIN = 0.03  # "the same quality": at most +3% Frechet distance in every space and every seed
CONVERGENCE_SAMPLES = 5  # per seed: the reference at twice its steps is run on these only (it is the costliest run)


@dataclass(frozen=True)
class Reference:
    """Converged final latents of the first `samples` samples of every seed, and how far twice the steps moves them."""

    steps: int
    samples: int  # per seed
    latents: dict  # seed -> (samples, C, H, W)
    convergence: float  # max relative L2 between the reference at `steps` and at 2 x `steps`

    def to_dict(self) -> dict:
        return {"steps": self.steps, "samples_per_seed": self.samples, "sampler": "euler, no sharing",
                "moved_at_twice_the_steps": self.convergence,
                "what": f"relative L2 of the reference at {self.steps} vs {2 * self.steps} steps, max over "
                        f"{min(self.samples, CONVERGENCE_SAMPLES)} samples per seed"}


def reference(pipe, inputs: Inputs, settings, steps: int, samples: int, progress: Callable[[str], None]) -> Reference:
    """Euler at `steps` (no sharing) on the first `samples` of every seed's noise, under the run's other settings."""
    if not 1 <= samples <= inputs.samples:
        raise DDTError(f"--fidelity-samples must be from 1 to --samples ({inputs.samples}), got {samples}")
    base = {"sampler": "euler", "order": 1, "num_steps": steps}
    latents, moved = {}, 0.0
    for sd in inputs.seeds:
        labels, noise = inputs.labels[:samples], inputs.noises[sd][:samples]
        progress(f"reference: Euler {steps} steps, {samples} samples of seed {sd}")
        latents[sd] = _generate(pipe, labels, noise, settings, base)
        k = min(samples, CONVERGENCE_SAMPLES)
        progress(f"reference convergence: Euler {2 * steps} steps, {k} samples of seed {sd}")
        twice = _generate(pipe, labels[:k], noise[:k], settings, {**base, "num_steps": 2 * steps})
        moved = max(moved, float(relative_l2(latents[sd][:k], twice).max()))
    return Reference(steps, samples, latents, moved)


def _generate(pipe, labels, noise, settings, solver: dict) -> np.ndarray:
    s = settings.with_overrides(**solver)
    return pipe.generate(labels, noise=noise, **{k: getattr(s, k) for k in s.to_dict()}).latents


def relative_l2(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per sample ||x - ref|| / ||ref||, in float64."""
    x, ref = x.reshape(len(x), -1).astype(np.float64), ref.reshape(len(ref), -1).astype(np.float64)
    return np.linalg.norm(x - ref, axis=1) / np.linalg.norm(ref, axis=1)


def fidelity(latents: np.ndarray, inputs: Inputs, ref: Reference) -> float:
    """Mean relative L2 of a row's final latents (seeds x samples, in sampling order) to the reference."""
    n = inputs.samples
    return float(np.mean([relative_l2(latents[i * n : i * n + ref.samples], ref.latents[sd]) for i, sd in enumerate(inputs.seeds)]))


def baseline_config(text: str) -> Config:
    """"euler:250" -> the fp32 no-sharing row of that solver at that many steps."""
    name, _, steps = text.partition(":")
    try:
        n = whole(steps, "--baseline")  # labels.py's grammar: isdigit() takes '²' (which int() refuses) and full-width digits
    except DDTError:
        n = 0
    if n < 1:
        raise DDTError(f"--baseline must be SOLVER:STEPS, e.g. euler:250 (got {text!r})")
    return Config("fp32", 0.0, "uniform", Solver.parse(name, n))


def frontier(rows: list[Row], boot: dict, baseline: Config) -> dict:
    """Every row against the baseline (paired, relative, every space and seed), the fewest network calls within +3% per
    solver, and the price of sharing per solver: each sharing row against its own solver and steps without sharing."""
    at = {r.config: i for i, r in enumerate(rows)}
    b = at.get(baseline)
    if b is None:
        raise DDTError(f"the baseline {baseline.solver} has no row in this run")
    vs_baseline = {r.key: _within(boot, rows, i, b) | {"network_calls": r.sampling.steps, "encoder_calls": r.encoder_calls}
                   for i, r in enumerate(rows) if i != b}
    sharing = {}
    for i, r in enumerate(rows):
        own = at.get(r.config.at(ratio=0.0, schedule="uniform")) if r.config.ratio > 0 else None
        if own is not None:
            sharing[r.key] = _within(boot, rows, i, own) | {"ratio": r.config.ratio, "schedule": r.config.schedule}
    return {"baseline": rows[b].key, "baseline_solver": str(baseline.solver), "within": WITHIN, "vs_baseline": vs_baseline, "fewest_calls": _fewest(rows, vs_baseline),
            "sharing_vs_none": sharing, "largest_ratio_within": _largest_ratio(rows, sharing)}


def _within(boot: dict, rows: list[Row], a: int, b: int) -> dict:
    """Row a against row b (paired, relative) with its verdict against +3%: every space pooled, and every seed alone."""
    cmp = _paired(boot, rows, a, b)
    pa, pb = rows[a].scores.per_seed, rows[b].scores.per_seed
    by_seed = {sd: {k: pa[sd][k] / pb[sd][k] - 1 for k in cmp} for sd in pb}
    ok = all(v["rel"] <= WITHIN for v in cmp.values())
    seeds_ok = all(rel <= WITHIN for per in by_seed.values() for rel in per.values())
    return {"by_space": cmp, "rel_by_seed": by_seed, "within_every_space": ok, "within_every_seed": seeds_ok, "within": ok and seeds_ok}


def _fewest(rows: list[Row], vs: dict) -> dict:
    """Per solver: the row within +3% with the fewest network calls (then fewest encoder calls), or None."""
    best: dict[str, Row | None] = {}
    for r in rows:
        name = r.config.solver.name
        best.setdefault(name, None)
        if r.key in vs and vs[r.key]["within"]:
            cur = best[name]
            if cur is None or (r.sampling.steps, r.encoder_calls) < (cur.sampling.steps, cur.encoder_calls):
                best[name] = r
    return {k: (None if r is None else {"row": r.key, "network_calls": r.sampling.steps, "encoder_calls": r.encoder_calls})
            for k, r in best.items()}


def _largest_ratio(rows: list[Row], sharing: dict) -> dict:
    """Per solver and schedule: the largest sharing ratio whose rows are all within +3% of no sharing (every step count)."""
    out: dict[str, float] = {}
    groups: dict[tuple, list[bool]] = {}
    for r in rows:
        if r.key in sharing:
            groups.setdefault((r.config.solver.name, r.config.schedule, r.config.ratio), []).append(sharing[r.key]["within"])
    for (name, schedule, ratio), oks in groups.items():
        key = f"{name} {schedule}"
        out.setdefault(key, 0.0)
        if all(oks):
            out[key] = max(out[key], ratio)
    return out
