"""The quality benchmark's comparisons: the paired bootstrap, DP vs uniform, each precision vs fp32, verdicts, the floor.

Every row is resampled with the same sample indices (every configuration starts from the same
noise), so a difference between two rows has a far tighter interval than either row's spread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .judges import FeatureSpaces, bootstrap_frechet, frechet_distance
from .quality_rows import DP_AT_UNIFORM, Config, Row


def bootstrap(rows: list[Row], feats: list[dict], real: dict, resamples: int, seed: int) -> dict[str, np.ndarray]:
    """{space: (rows, resamples)} paired bootstrap distances; sets each row's spread (its resamples' std)."""
    boot = {k: bootstrap_frechet([f[k] for f in feats], real[k], resamples=resamples, seed=seed) for k in FeatureSpaces.NAMES}
    for i, row in enumerate(rows):
        row.frechet_std_by_space = {k: float(boot[k][i].std()) for k in boot}
    return boot


def _paired(boot: dict[str, np.ndarray], rows: list[Row], a: int, b: int) -> dict:
    """Row a minus row b in every space: difference, relative difference and their 95% bootstrap intervals."""
    out = {}
    for space, bs in boot.items():
        d = bs[a] - bs[b]
        rel = d / bs[b]
        va, vb = rows[a].scores.frechet_by_space[space], rows[b].scores.frechet_by_space[space]
        pa, pb = rows[a].scores.per_seed, rows[b].scores.per_seed
        out[space] = {"diff": va - vb, "ci95": [float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))],
                      "rel": (va - vb) / vb, "rel_ci95": [float(np.percentile(rel, 2.5)), float(np.percentile(rel, 97.5))],
                      "per_seed": {sd: pa[sd][space] - pb[sd][space] for sd in pa}}
    return out


def verdict(cmp: dict) -> str:
    """"lower", "higher" or "tie" when every space agrees (interval excludes 0 and every seed has that sign), else "mixed"."""
    signs = set()
    for v in cmp.values():
        lo, hi = v["ci95"]
        seeds = set(np.sign(list(v["per_seed"].values())).tolist())
        if hi < 0 and seeds == {-1.0}:
            signs.add("lower")
        elif lo > 0 and seeds == {1.0}:
            signs.add("higher")
        elif lo <= 0 <= hi:
            signs.add("tie")
        else:
            signs.add("mixed")
    return signs.pop() if len(signs) == 1 else "mixed"


@dataclass(frozen=True)
class Comparisons:
    """The paired comparisons of a run, as the JSON has them."""

    dp_vs_uniform: dict  # ratio -> DP minus uniform (DP at its own budget)
    dp_equal_calls_vs_uniform: dict  # ratio -> DP at uniform's encoder calls minus uniform
    precision_vs_fp32: dict  # row key -> that row minus fp32 at the same ratio and schedule


def compare(rows: list[Row], boot: dict[str, np.ndarray]) -> Comparisons:
    at = {r.config: i for i, r in enumerate(rows)}
    return Comparisons(*schedules_vs_uniform(rows, boot, at), precisions_vs_fp32(rows, boot, at))


def schedules_vs_uniform(rows: list[Row], boot: dict, at: dict[Config, int]) -> tuple[dict, dict]:
    """fp32 DP rows minus the uniform row at each sharing ratio and solver: (DP at its budget, DP at uniform's calls).
    Keyed by the ratio ("0.75"), prefixed by the solver on the solver axis ("adams2 16 0.75")."""
    paired, equal = {}, {}
    for solver, ratio in sorted({(r.config.solver, r.config.ratio) for r in rows if r.config.precision == "fp32" and r.config.ratio > 0},
                                key=lambda sr: (str(sr[0]), sr[1])):
        u, d, de = (at.get(Config("fp32", ratio, s, solver)) for s in ("uniform", "dp", DP_AT_UNIFORM))
        key = f"{ratio:g}" if solver.default else f"{solver} {ratio:g}"
        if u is not None and d is not None:
            cmp = _paired(boot, rows, d, u)
            paired[key] = {"dp_minus_uniform": cmp["mlp"]["diff"], "ci95": cmp["mlp"]["ci95"], "by_space": cmp,
                           "calls": _calls(rows, d, u), "verdict": verdict(cmp)}
        if u is not None and de is not None:
            cmp = _paired(boot, rows, de, u)
            equal[key] = {"by_space": cmp, "calls": _calls(rows, de, u), "verdict": verdict(cmp)}
    return paired, equal


def _calls(rows: list[Row], a: int, b: int) -> list[int]:
    """The encoder calls of rows a and b."""
    return [rows[a].encoder_calls, rows[b].encoder_calls]


def precisions_vs_fp32(rows: list[Row], boot: dict, at: dict[Config, int]) -> dict:
    """Every other precision's row minus the fp32 row of the same configuration, relative, in every space."""
    out = {}
    for i, r in enumerate(rows):
        ref = at.get(r.config.at(precision="fp32")) if r.config.precision != "fp32" else None
        if ref is not None:
            cmp = _paired(boot, rows, i, ref)
            out[r.key] = {"by_space": cmp, "accuracy": r.scores.accuracy, "accuracy_fp32": rows[ref].scores.accuracy,
                          "within_3pct_every_space": all(v["rel"] <= 0.03 for v in cmp.values()), "verdict": verdict(cmp)}
    return out


def real_floor(real: dict, n: int, seed: int) -> dict:
    """The distance `n` real digits drawn with replacement have to all of them: the best a sampler can score."""
    rng = np.random.default_rng(seed)
    floor = {k: float(np.mean([frechet_distance(real[k][rng.integers(0, len(real[k]), n)], real[k]) for _ in range(10)]))
             for k in FeatureSpaces.NAMES}
    return {"frechet": floor["mlp"], "by_space": floor, "std": 0.0, "what": f"{n} real digits drawn with replacement vs all 1,797 real digits"}
