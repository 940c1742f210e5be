"""`ddt-bench quality`: sample quality vs sharing ratio, uniform against DP, on the bundled digits model.

The judge is independent of the DDT: a small MLP classifier trained on scikit-learn's real
8x8 digits. It gives class accuracy, and its hidden layer is the feature space of a Frechet
distance between generated and real digits: an FID analogue (FID uses Inception features
of ImageNet images; this uses a digits classifier's features), not FID itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DDTError

RATIOS = (0.0, 0.5, 0.66, 0.75, 0.8, 0.83, 0.87)
SCHEDULES = ("uniform", "dp")
# DDT-XL/2 ImageNet 256, 250 steps, FID (paper, Table 4); ratio -> (uniform, dp)
PAPER_TABLE4 = {0.0: (1.31, 1.31), 0.5: (1.31, None), 0.66: (1.32, None), 0.75: (1.34, None),
                0.8: (1.36, 1.33), 0.83: (1.37, 1.36), 0.87: (1.42, 1.40)}


@lru_cache(maxsize=1)
def _inverse_upsampling() -> np.ndarray:
    """(64, 256): the least-squares inverse of the bilinear 8x8 -> 16x16 upsampling the model was trained on."""
    import torch
    import torch.nn.functional as F

    basis = torch.eye(64).reshape(64, 1, 8, 8)
    up = F.interpolate(basis, size=(16, 16), mode="bilinear", align_corners=False).reshape(64, 256).numpy()  # rows: U^T
    return np.linalg.pinv(up.T.astype(np.float64))  # (64, 256)


def to_digit_space(samples: np.ndarray) -> np.ndarray:
    """Generated (B, 1, 16, 16) in [-1, 1] -> (B, 64) in load_digits' 0..16 scale."""
    if samples.shape[1:] != (1, 16, 16):
        raise DDTError(f"the quality benchmark needs the bundled digits model's 1 x 16 x 16 samples (got {samples.shape[1:]})")
    x8 = samples.reshape(len(samples), 256).astype(np.float64) @ _inverse_upsampling().T  # B 64
    return np.clip((x8 + 1.0) * 8.0, 0.0, 16.0)


class Judge:
    """An MLP trained on the real digits: class predictions and hidden-layer features."""

    def __init__(self, seed: int = 0):
        from sklearn.datasets import load_digits
        from sklearn.neural_network import MLPClassifier

        digits = load_digits()
        self.real = digits.data.astype(np.float64)  # 1797 x 64, 0..16
        self.mlp = MLPClassifier(hidden_layer_sizes=(128,), max_iter=600, random_state=seed).fit(self.real / 16.0, digits.target)

    def predict(self, x64: np.ndarray) -> np.ndarray:
        return self.mlp.predict(x64 / 16.0)

    def features(self, x64: np.ndarray) -> np.ndarray:
        return np.maximum(x64 / 16.0 @ self.mlp.coefs_[0] + self.mlp.intercepts_[0], 0.0)  # ReLU hidden layer


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2), as FID computes it."""
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    eps = 1e-6 * np.eye(a.shape[1])  # dead ReLU units make both covariances singular; FID code adds the same offset
    sa, sb = np.cov(a, rowvar=False) + eps, np.cov(b, rowvar=False) + eps
    covmean = linalg.sqrtm(sa @ sb)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sa + sb - 2 * covmean.real))


def bootstrap_frechet(feats: list[np.ndarray], real: np.ndarray, *, resamples: int = 100, seed: int = 0) -> np.ndarray:
    """(len(feats), resamples): the Frechet distance of every feature set on shared resampled indices.

    All sets are resampled with the same indices, so sets generated from the same noise and
    labels stay paired: the spread of a difference between two rows is the paired spread.
    """
    rng = np.random.default_rng(seed)
    n = len(feats[0])
    out = np.empty((len(feats), resamples))
    for b in range(resamples):
        idx = rng.integers(0, n, n)
        for i, f in enumerate(feats):
            out[i, b] = frechet_distance(f[idx], real)
    return out


@dataclass
class Row:
    ratio: float
    schedule: str
    encoder_calls: int
    accuracy: float
    frechet: float
    frechet_std: float  # bootstrap over the samples
    latency_s: float
    per_class: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def run(build_dir: Path, *, samples: int = 1000, steps: int | None = None, seed: int = 0, backend: str = "onnxruntime",
        ratios=RATIOS, schedules=SCHEDULES, chunk: int = 250, progress: Callable[[str], None] = lambda m: None) -> dict:
    """Every (ratio, schedule): `samples` digits with labels i % 10 and noise from `seed`, judged."""
    from ..pipeline import Pipeline, seeded_noise

    if samples < 10:
        raise DDTError(f"--samples must be at least 10, one per class (got {samples})")
    pipe = Pipeline.load(build_dir, backend)
    if pipe.space != "pixel" or pipe.arch.latent_shape != (1, 16, 16):
        raise DDTError("the quality benchmark judges the bundled digits model; build it with `ddt-export build`")
    settings = pipe.defaults.with_overrides(num_steps=steps)
    labels = [i % 10 for i in range(samples)]
    noise = seeded_noise(samples, pipe.arch.latent_shape, seed)
    progress("training the judge on the real digits")
    judge = Judge()
    real_feats = judge.features(judge.real)
    rows, feats = [], []
    for ratio in ratios:
        for schedule in schedules if ratio > 0 else ("uniform",):
            progress(f"ratio {ratio:.2f} {schedule if ratio > 0 else '(no sharing)'}")
            pipe.schedule(settings.num_steps, sharing_ratio=ratio, method=schedule)  # calibrate outside the timing
            started, parts, recompute = time.perf_counter(), [], []
            for lo in range(0, samples, chunk):
                r = pipe.generate(labels[lo : lo + chunk], noise=noise[lo : lo + chunk], sharing_ratio=ratio, schedule=schedule,
                                  num_steps=settings.num_steps)
                parts.append(r.latents)
                recompute = r.recompute
            elapsed = time.perf_counter() - started
            x64 = to_digit_space(np.concatenate(parts))
            pred = judge.predict(x64)
            hits = pred == np.array(labels)
            feats.append(judge.features(x64))
            rows.append(Row(ratio, "none" if ratio == 0 else schedule, len(recompute), float(hits.mean()),
                            frechet_distance(feats[-1], real_feats), 0.0, elapsed,
                            [float(hits[np.array(labels) == c].mean()) for c in range(10)]))
    progress("bootstrapping the distances")
    boot = bootstrap_frechet(feats, real_feats, seed=seed)
    for row, b in zip(rows, boot):
        row.frechet_std = float(b.std())
    # DP minus uniform at each ratio, paired (same noise, same labels, same resamples).
    paired = {}
    for ratio in sorted({r.ratio for r in rows}):
        at = {r.schedule: i for i, r in enumerate(rows) if r.ratio == ratio}
        if {"uniform", "dp"} <= at.keys():
            d = boot[at["dp"]] - boot[at["uniform"]]
            paired[f"{ratio:g}"] = {"dp_minus_uniform": rows[at["dp"]].frechet - rows[at["uniform"]].frechet,
                                    "ci95": [float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))]}
    # The floor: real digits resampled to the same count, against all real digits.
    rng = np.random.default_rng(seed)
    floor = np.array([frechet_distance(real_feats[rng.integers(0, len(real_feats), samples)], real_feats) for _ in range(20)])
    return {
        "build": str(build_dir),
        "backend": pipe.backend.name,
        "samples": samples,
        "steps": settings.num_steps,
        "seed": seed,
        "sampler": settings.to_dict(),
        "judge": "MLPClassifier(128) on sklearn load_digits (real 8x8); Frechet distance in its hidden layer: an FID analogue",
        "real_floor": {"frechet": float(floor.mean()), "std": float(floor.std()),
                       "what": f"{samples} real digits drawn with replacement vs all 1,797 real digits"},
        "rows": [r.to_dict() for r in rows],
        "dp_vs_uniform": paired,
        "paper_table4_fid": {str(k): {"uniform": u, "dp": d} for k, (u, d) in PAPER_TABLE4.items()},
    }


def table(result: dict):
    from rich.table import Table

    t = Table(title=f"quality vs sharing ({result['samples']} samples, {result['steps']} steps, {result['backend']})")
    for col in ("ratio", "schedule", "encoder calls", "accuracy", "Frechet (digits features)", "DP - uniform [95% CI]",
                "seconds", "paper FID (uniform / DP)"):
        t.add_column(col, justify="right")
    for r in result["rows"]:
        u, d = PAPER_TABLE4.get(r["ratio"], (None, None))
        paper = f"{u} / {d if d is not None else '-'}" if u is not None else "-"
        diff = result.get("dp_vs_uniform", {}).get(f"{r['ratio']:g}") if r["schedule"] == "dp" else None
        diff_s = f"{diff['dp_minus_uniform']:+.3f} [{diff['ci95'][0]:+.3f}, {diff['ci95'][1]:+.3f}]" if diff else ""
        t.add_row(f"{r['ratio']:.2f}", r["schedule"], str(r["encoder_calls"]), f"{100 * r['accuracy']:.1f}%",
                  f"{r['frechet']:.3f} ± {r.get('frechet_std', 0):.3f}", diff_s, f"{r['latency_s']:.1f}", paper)
    if "real_floor" in result:
        t.caption = f"floor: {result['real_floor']['what']}: {result['real_floor']['frechet']:.3f}"
    return t


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..images import atomic_write

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(14, 4), dpi=120)
    base = [r for r in result["rows"] if r["ratio"] == 0]
    for schedule, marker in (("uniform", "o"), ("dp", "s")):
        rows = base + [r for r in result["rows"] if r["schedule"] == schedule]
        ax1.errorbar([r["ratio"] for r in rows], [r["frechet"] for r in rows], yerr=[r.get("frechet_std", 0) for r in rows],
                     marker=marker, capsize=3, label=schedule)
        ax3.plot([r["ratio"] for r in rows], [100 * r["accuracy"] for r in rows], marker=marker, label=schedule)
    paired = result.get("dp_vs_uniform", {})
    if paired:
        xs = [float(k) for k in paired]
        ys = [v["dp_minus_uniform"] for v in paired.values()]
        lo = [y - v["ci95"][0] for y, v in zip(ys, paired.values())]
        hi = [v["ci95"][1] - y for y, v in zip(ys, paired.values())]
        ax2.errorbar(xs, ys, yerr=[lo, hi], marker="s", color="C1", capsize=3, ls="none")
        calls = {(r["ratio"], r["schedule"]): r["encoder_calls"] for r in result["rows"]}
        for x, y in zip(xs, ys):  # encoder calls, DP / uniform
            ax2.annotate(f"{calls.get((x, 'dp'))}/{calls.get((x, 'uniform'))} calls", (x, y), textcoords="offset points",
                         xytext=(6, 0), fontsize=7)
        ax2.axhline(0, color="grey", lw=0.8)
    # The real-vs-real floor (~0.17) is stated, not drawn: a line there would squash the curves into one.
    floor = f"\nreal vs real floor: {result['real_floor']['frechet']:.2f}" if "real_floor" in result else ""
    ax1.set(xlabel="sharing ratio", ylabel="Frechet distance (digits-classifier features)",
            title=f"distance to real digits (lower is better){floor}")
    lowest = min(100 * r["accuracy"] for r in result["rows"])
    ax3.set_ylim(min(90.0, lowest - 1), 100.5)  # 99.9 vs 100 must not look like a cliff
    ax2.set(xlabel="sharing ratio", ylabel="Frechet: DP minus uniform", title="DP vs uniform, paired, 95% bootstrap interval\n(below 0: DP better)")
    ax3.set(xlabel="sharing ratio", ylabel="class accuracy (%)", title="recognised as their class")
    for ax in (ax1, ax3):
        ax.legend()
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
    fig.suptitle(f"bundled digits DDT: {result['samples']} samples, {result['steps']} steps", fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)
