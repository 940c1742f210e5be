"""`ddt-bench quality`: sample quality vs sharing ratio and precision, on the bundled digits model.

Every row is judged independently of the DDT, in three feature spaces (FeatureSpaces): the
hidden layer of a small MLP classifier trained on scikit-learn's real 8x8 digits (which also
gives class accuracy), a PCA-16 of the real digits, and the raw 8x8 pixels (nothing learned).
The Frechet distance between generated and real digits in each is an FID analogue (FID uses
Inception features of ImageNet images), not FID itself. Rows pool at least two noise seeds;
comparisons (DP vs uniform, also at equal encoder calls; each precision vs fp32 at the same
ratio) are paired bootstraps over the same sample indices, and a claim is one every space and
every seed agree on (`verdict`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DDTError
from ..schedules import PAPER_RATIOS
from .judges import FeatureSpaces, Judge, bootstrap_frechet, frechet_distance, to_digit_space  # noqa: F401 (re-exported)

RATIOS = PAPER_RATIOS
SCHEDULES = ("uniform", "dp")
# DDT-XL/2 ImageNet 256, 250 steps, FID (paper, Table 4); ratio -> (uniform, dp)
PAPER_TABLE4 = {0.0: (1.31, 1.31), 0.5: (1.31, None), 0.66: (1.32, None), 0.75: (1.34, None),
                0.8: (1.36, 1.33), 0.83: (1.37, 1.36), 0.87: (1.42, 1.40)}


@dataclass
class Row:
    ratio: float
    schedule: str  # "none", "uniform", "dp", or "dp@uniform" (DP at uniform's encoder calls)
    encoder_calls: int
    accuracy: float
    frechet: float  # in the mlp space (the judge classifier's features), as before
    frechet_std: float  # bootstrap over the samples
    latency_s: float
    per_class: list = field(default_factory=list)
    precision: str = "fp32"
    backend: str = "onnxruntime"
    frechet_by_space: dict = field(default_factory=dict)  # {space: value}
    frechet_std_by_space: dict = field(default_factory=dict)
    per_seed: dict = field(default_factory=dict)  # {seed: {"accuracy": a, space: value}}
    recompute: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return self.__dict__.copy()

    @property
    def key(self) -> str:
        return f"{self.precision} {self.ratio:g} {self.schedule}"


PRECISIONS = ("fp32", "bf16", "int8", "fp8")
PRECISION_RATIOS = (0.0, 0.75, 0.87)
# where each precision runs in this benchmark: bf16 is OpenVINO's bf16 matmuls on the fp32 graphs,
# int8 the QDQ graphs on onnxruntime's CPU (VNNI kernels), fp8 the e4m3 QDQ graphs emulated by onnxruntime
PRECISION_BACKEND = {"fp32": None, "bf16": "openvino", "int8": "onnxruntime", "fp8": "onnxruntime"}


def quantised_build(build_dir: Path, precision: str, into: Path, progress: Callable[[str], None]) -> Path:
    """An int8/fp8 build of the same model and sampler as `build_dir`, made into `into`."""
    from ..build import build
    from ..manifest import read
    from ..official import ModelSource

    m = read(build_dir)
    src = ModelSource(m.name, m.arch, m.null_class, m.sampler, m.space)
    out = into / f"{m.name}-{precision}"
    progress(f"building {precision} ({out})")
    build(src, m.load_model(), out, precision=precision, weights_from=m.data["model"].get("weights", "random"))
    return out


def open_precision(build_dir: Path, precision: str, backend: str, builds: dict, into: Path | None, progress) -> "object":
    from ..backends.openvino_backend import OpenVinoBackend
    from ..manifest import read
    from ..pipeline import Pipeline

    if precision == "fp32":
        return Pipeline.load(build_dir, backend)
    if precision == "bf16":
        m = read(build_dir)
        ov = OpenVinoBackend(m, precision="bf16")
        return Pipeline(ov, arch=m.arch, null_class=m.null_class, sampler=m.sampler, space=m.space, manifest=m)
    path = builds.get(precision)
    if path is None:
        if into is None:
            raise DDTError(f"no {precision} build given; pass builds={{'{precision}': PATH}}")
        path = builds[precision] = quantised_build(build_dir, precision, into, progress)
    if read(path).precision != precision:
        raise DDTError(f"{path} is a {read(path).precision} build, not {precision}")
    return Pipeline.load(path, PRECISION_BACKEND[precision])


def _paired(boot: dict[str, np.ndarray], rows: list[Row], a: int, b: int) -> dict:
    """Row a minus row b in every space: difference, relative difference and their 95% bootstrap intervals."""
    out = {}
    for space, bs in boot.items():
        d = bs[a] - bs[b]
        rel = d / bs[b]
        va, vb = rows[a].frechet_by_space[space], rows[b].frechet_by_space[space]
        out[space] = {"diff": va - vb, "ci95": [float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))],
                      "rel": (va - vb) / vb, "rel_ci95": [float(np.percentile(rel, 2.5)), float(np.percentile(rel, 97.5))],
                      "per_seed": {sd: rows[a].per_seed[sd][space] - rows[b].per_seed[sd][space] for sd in rows[a].per_seed}}
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


def run(build_dir: Path, *, samples: int = 1000, steps: int | None = None, seed: int = 0, backend: str = "onnxruntime",
        ratios=RATIOS, schedules=SCHEDULES, chunk: int = 250, progress: Callable[[str], None] = lambda m: None,
        seeds: tuple[int, ...] | None = None, equal_calls: bool = True, precisions=("fp32",),
        precision_ratios=PRECISION_RATIOS, precision_schedules=("uniform",), builds: dict | None = None,
        work_dir: Path | None = None, resamples: int = 100) -> dict:
    """Every (ratio, schedule) in fp32, and every other precision at `precision_ratios`: `samples` digits per noise seed
    (labels i % 10), judged in every feature space, with paired bootstrap comparisons.

    `seeds` default to (seed, seed + 1). `equal_calls` adds a DP row at uniform's encoder calls wherever
    the DP's budget N // R is smaller than uniform's ceil(N / R). int8/fp8 builds come from `builds`
    ({"int8": PATH}) or are built from `build_dir`'s model into `work_dir` (a temp folder by default).
    """
    import tempfile

    from .. import schedules as sched
    from ..pipeline import Pipeline, seeded_noise

    if samples < 10:
        raise DDTError(f"--samples must be at least 10, one per class (got {samples})")
    seeds = tuple(seeds) if seeds is not None else (seed, seed + 1)
    for p in precisions:
        if p not in PRECISIONS:
            raise DDTError(f"unknown precision {p!r} for the quality benchmark; choose from {', '.join(PRECISIONS)}")
    pipe = Pipeline.load(build_dir, backend)
    if pipe.space != "pixel" or pipe.arch.latent_shape != (1, 16, 16):
        raise DDTError("the quality benchmark judges the bundled digits model; build it with `ddt-export build`")
    settings = pipe.defaults.with_overrides(num_steps=steps)
    N = settings.num_steps
    labels = [i % 10 for i in range(samples)]
    all_labels = np.array(labels * len(seeds))
    noises = {sd: seeded_noise(samples, pipe.arch.latent_shape, sd) for sd in seeds}
    progress("training the judge on the real digits")
    judge = Judge()
    spaces = FeatureSpaces(judge)
    real = spaces(judge.real)
    builds = dict(builds or {})
    tmp = None if work_dir is not None or set(precisions) <= {"fp32", "bf16"} or set(builds) >= set(precisions) - {"fp32", "bf16"} \
        else tempfile.TemporaryDirectory(prefix="ddt-quality-")
    into = Path(work_dir) if work_dir is not None else (Path(tmp.name) if tmp is not None else None)

    # the configurations: (precision, ratio, schedule, explicit recompute or None)
    configs = []
    for ratio in ratios:
        for schedule in schedules if ratio > 0 else ("uniform",):
            configs.append(("fp32", ratio, schedule))
        if equal_calls and ratio > 0 and "dp" in schedules and sched.budget(N, ratio) < len(sched.uniform(N, ratio)):
            configs.append(("fp32", ratio, "dp@uniform"))
    for p in precisions:
        if p == "fp32":
            continue
        for ratio in precision_ratios:
            for schedule in precision_schedules if ratio > 0 else ("uniform",):
                configs.append((p, ratio, schedule))
    if "fp32" in precisions and set(precisions) - {"fp32"}:
        for ratio in precision_ratios:  # every other precision's row needs its fp32 counterpart
            for schedule in precision_schedules if ratio > 0 else ("uniform",):
                if ("fp32", ratio, schedule) not in configs:
                    configs.append(("fp32", ratio, schedule))

    pipes: dict[str, object] = {"fp32": pipe}
    rows, feats = [], []
    try:
        for precision, ratio, schedule in configs:
            if precision not in pipes:
                pipes[precision] = open_precision(build_dir, precision, backend, builds, into, progress)
            pp = pipes[precision]
            what = f"ratio {ratio:.2f} {schedule if ratio > 0 else '(no sharing)'}"
            progress(what if precision == "fp32" else f"{precision} {what}")
            if schedule == "dp@uniform":
                pp.calibrated(pp.plan(labels[:1], sharing_ratio=ratio, schedule="dp", num_steps=N))
                recompute = sched.dp(pp.similarity(settings), len(sched.uniform(N, ratio)))
                kw = {"recompute": recompute}
            else:
                kw = {"sharing_ratio": ratio, "schedule": schedule}
                if ratio > 0 and schedule == "dp":
                    pp.calibrated(pp.plan(labels[:1], num_steps=N, **kw))  # calibrate outside the timing
            started, parts, recompute = time.perf_counter(), [], []
            for sd in seeds:
                for lo in range(0, samples, chunk):
                    r = pp.generate(labels[lo : lo + chunk], noise=noises[sd][lo : lo + chunk], num_steps=N, **kw)
                    parts.append(r.latents)
                    recompute = r.recompute
            elapsed = time.perf_counter() - started
            x64 = to_digit_space(np.concatenate(parts))
            hits = judge.predict(x64) == all_labels
            f = spaces(x64)
            feats.append(f)
            by_space = {k: frechet_distance(v, real[k]) for k, v in f.items()}
            per_seed = {}
            for i, sd in enumerate(seeds):
                sl = slice(i * samples, (i + 1) * samples)
                per_seed[str(sd)] = {"accuracy": float(hits[sl].mean()), **{k: frechet_distance(v[sl], real[k]) for k, v in f.items()}}
            rows.append(Row(ratio, "none" if ratio == 0 else schedule, len(recompute), float(hits.mean()), by_space["mlp"], 0.0,
                            elapsed, [float(hits[all_labels == c].mean()) for c in range(10)], precision, pp.backend.name,
                            by_space, {}, per_seed, list(map(int, recompute))))
    finally:
        if tmp is not None:
            tmp.cleanup()
    progress("bootstrapping the distances")
    boot = {k: bootstrap_frechet([f[k] for f in feats], real[k], resamples=resamples, seed=seed) for k in FeatureSpaces.NAMES}
    for i, row in enumerate(rows):
        row.frechet_std_by_space = {k: float(boot[k][i].std()) for k in boot}
        row.frechet_std = row.frechet_std_by_space["mlp"]
    at = {r.key: i for i, r in enumerate(rows)}
    paired, equal, vs_fp32 = {}, {}, {}
    for ratio in sorted({r.ratio for r in rows if r.precision == "fp32"}):
        u, d, de = (at.get(f"fp32 {ratio:g} {s}") for s in ("uniform", "dp", "dp@uniform"))
        if u is not None and d is not None:
            cmp = _paired(boot, rows, d, u)
            paired[f"{ratio:g}"] = {"dp_minus_uniform": cmp["mlp"]["diff"], "ci95": cmp["mlp"]["ci95"], "by_space": cmp,
                                    "calls": [rows[d].encoder_calls, rows[u].encoder_calls], "verdict": verdict(cmp)}
        if u is not None and de is not None:
            cmp = _paired(boot, rows, de, u)
            equal[f"{ratio:g}"] = {"by_space": cmp, "calls": [rows[de].encoder_calls, rows[u].encoder_calls], "verdict": verdict(cmp)}
    for i, r in enumerate(rows):
        ref = at.get(f"fp32 {r.ratio:g} {r.schedule if r.ratio > 0 else 'uniform'}") if r.precision != "fp32" else None
        if ref is None and r.precision != "fp32" and r.ratio == 0:
            ref = at.get("fp32 0 none")
        if ref is not None:
            cmp = _paired(boot, rows, i, ref)
            vs_fp32[r.key] = {"by_space": cmp, "accuracy": r.accuracy, "accuracy_fp32": rows[ref].accuracy,
                              "within_3pct_every_space": all(v["rel"] <= 0.03 for v in cmp.values()), "verdict": verdict(cmp)}
    rng = np.random.default_rng(seed)
    n = samples * len(seeds)
    floor = {k: float(np.mean([frechet_distance(real[k][rng.integers(0, len(real[k]), n)], real[k]) for _ in range(10)]))
             for k in FeatureSpaces.NAMES}
    return {
        "build": str(build_dir),
        "backend": pipe.backend.name,
        "samples": samples,
        "seeds": list(seeds),
        "steps": N,
        "seed": seed,
        "sampler": settings.to_dict(),
        "judge": "MLPClassifier(128) on sklearn load_digits (real 8x8): accuracy; Frechet distance in three feature spaces",
        "feature_spaces": {"mlp": "the judge's 128-wide ReLU hidden layer (learned)",
                           "pca16": "top 16 principal components of the real 8x8 digits (linear, fitted to real data)",
                           "pixels": "raw 8x8 pixels, 0..1 (nothing fitted)"},
        "real_floor": {"frechet": floor["mlp"], "by_space": floor, "std": 0.0,
                       "what": f"{n} real digits drawn with replacement vs all 1,797 real digits"},
        "rows": [r.to_dict() for r in rows],
        "dp_vs_uniform": paired,
        "dp_equal_calls_vs_uniform": equal,
        "precision_vs_fp32": vs_fp32,
        "builds": {k: str(v) for k, v in builds.items()},
        "bootstrap": {"resamples": resamples, "paired": "every row resampled with the same indices over the pooled seeds"},
        "verdict_rule": "lower/higher: in every feature space the 95% interval excludes 0 and every seed has that sign; "
                        "tie: every interval includes 0; otherwise mixed",
        "paper_table4_fid": {str(k): {"uniform": u, "dp": d} for k, (u, d) in PAPER_TABLE4.items()},
        "load_average": list(__import__("os").getloadavg()),
    }


def _fmt_cmp(cmp: dict | None, rel: bool = False) -> str:
    """Every space's difference (relative: in %), the first space's 95% interval, and the verdict (intervals in the JSON)."""
    if not cmp:
        return ""
    parts = []
    for i, k in enumerate(FeatureSpaces.NAMES):
        v = cmp["by_space"][k]
        ci = v["rel_ci95"] if rel else v["ci95"]
        val = f"{100 * v['rel']:+.1f}%" if rel else f"{v['diff']:+.3f}"
        if i == 0:
            val += f" [{100 * ci[0]:+.1f},{100 * ci[1]:+.1f}]" if rel else f" [{ci[0]:+.3f},{ci[1]:+.3f}]"
        parts.append(val)
    return " / ".join(parts) + f" {cmp['verdict']}"


def table(result: dict):
    """One line per row; the paired column is DP (or DP at uniform's calls) minus uniform for fp32 sharing rows, and the
    relative change from fp32 at the same ratio for other precisions."""
    from rich.table import Table

    seeds = result.get("seeds", [result.get("seed")])
    t = Table(title=f"quality ({result['samples']} samples x seeds {seeds}, {result['steps']} steps)")
    for col in ("precision", "ratio", "schedule", "calls", "accuracy", "Frechet mlp / pca16 / pixels",
                "paired diff: mlp [95% CI] / pca16 / pixels", "seconds"):
        t.add_column(col, justify="right")
    for r in result["rows"]:
        fs = r.get("frechet_by_space") or {"mlp": r["frechet"]}
        fr = " / ".join(f"{v:.3f}" + (f"±{r.get('frechet_std', 0):.3f}" if k == "mlp" else "") for k, v in fs.items())
        ratio_key = f"{r['ratio']:g}"
        diff = ""
        if r.get("precision", "fp32") != "fp32":
            diff = _fmt_cmp(result.get("precision_vs_fp32", {}).get(f"{r['precision']} {r['ratio']:g} {r['schedule']}"), rel=True)
        elif r["schedule"] == "dp":
            d = result.get("dp_vs_uniform", {}).get(ratio_key)
            diff = _fmt_cmp(d) if d and "by_space" in d else (f"{d['dp_minus_uniform']:+.3f}" if d else "")
        elif r["schedule"] == "dp@uniform":
            diff = _fmt_cmp(result.get("dp_equal_calls_vs_uniform", {}).get(ratio_key))
        t.add_row(r.get("precision", "fp32"), f"{r['ratio']:.2f}", r["schedule"], str(r["encoder_calls"]), f"{100 * r['accuracy']:.1f}%",
                  fr, diff, f"{r['latency_s']:.1f}")
    if "real_floor" in result:
        by = result["real_floor"].get("by_space", {"mlp": result["real_floor"]["frechet"]})
        t.caption = (f"paired diff: DP rows minus uniform; other precisions vs fp32 at the same ratio, in %. "
                     f"floor ({result['real_floor']['what']}): " + " / ".join(f"{k} {v:.3f}" for k, v in by.items()))
    return t


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..files import atomic_write

    rows = result["rows"]
    spaces = list(rows[0].get("frechet_by_space") or {"mlp": 0})
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.4), dpi=110)
    ax1, ax2, ax3, ax4 = axes
    # 1: Frechet (mlp) vs ratio, one line per precision and schedule
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r.get("precision", "fp32"), r["schedule"]), []).append(r)
    base = {p: [r for r in rows if r.get("precision", "fp32") == p and r["ratio"] == 0] for p in PRECISIONS}
    for (p, schedule), rs in groups.items():
        if schedule == "none":
            continue
        rs = sorted(base.get(p, []) + rs, key=lambda r: r["ratio"])
        ax1.errorbar([r["ratio"] for r in rs], [r["frechet"] for r in rs], yerr=[r.get("frechet_std", 0) for r in rs],
                     marker="o" if schedule == "uniform" else "s", capsize=2, label=f"{p} {schedule}", alpha=0.85)
        ax4.plot([r["ratio"] for r in rs], [100 * r["accuracy"] for r in rs], marker=".", label=f"{p} {schedule}")
    ax1.set(xlabel="sharing ratio", ylabel="Frechet distance, mlp features", title="distance to real digits (lower is better)")
    ax1.legend(fontsize=7)
    # 2: precision vs fp32, relative, per space, with 95% intervals and the +3% goal
    vs = result.get("precision_vs_fp32", {})
    for j, space in enumerate(spaces):
        xs, ys, lo, hi = [], [], [], []
        for i, (k, v) in enumerate(vs.items()):
            c = v["by_space"][space]
            xs.append(i + (j - 1) * 0.22)
            ys.append(100 * c["rel"])
            lo.append(max(0.0, 100 * (c["rel"] - c["rel_ci95"][0])))  # a percentile interval need not contain the estimate
            hi.append(max(0.0, 100 * (c["rel_ci95"][1] - c["rel"])))
        ax2.errorbar(xs, ys, yerr=[lo, hi], marker="os^"[j % 3], ls="none", capsize=2, label=space)
    ax2.set_xticks(range(len(vs)), [k.replace(" uniform", "").replace(" none", "") for k in vs], rotation=60, fontsize=7)
    ax2.axhline(3, color="red", lw=0.8, ls="--", label="+3% goal")
    ax2.axhline(0, color="grey", lw=0.8)
    ax2.set(ylabel="Frechet vs fp32 at the same ratio (%)", title="precision cost, paired, 95% bootstrap interval")
    ax2.legend(fontsize=7)
    # 3: DP minus uniform (fewer calls, and equal calls) per space
    items = [(f"{k} ({v['calls'][0]}/{v['calls'][1]})", v) for k, v in result.get("dp_vs_uniform", {}).items() if "by_space" in v]
    items += [(f"{k} eq ({v['calls'][0]}/{v['calls'][1]})", v) for k, v in result.get("dp_equal_calls_vs_uniform", {}).items()]
    for j, space in enumerate(spaces):
        xs, ys, lo, hi = [], [], [], []
        for i, (_, v) in enumerate(items):
            c = v["by_space"][space]
            xs.append(i + (j - 1) * 0.22)
            ys.append(100 * c["rel"])
            lo.append(max(0.0, 100 * (c["rel"] - c["rel_ci95"][0])))  # a percentile interval need not contain the estimate
            hi.append(max(0.0, 100 * (c["rel_ci95"][1] - c["rel"])))
        ax3.errorbar(xs, ys, yerr=[lo, hi], marker="os^"[j % 3], ls="none", capsize=2, label=space)
    ax3.set_xticks(range(len(items)), [k for k, _ in items], rotation=60, fontsize=7)
    ax3.axhline(0, color="grey", lw=0.8)
    ax3.set(ylabel="Frechet, DP vs uniform (%)", title="DP vs uniform, paired (below 0: DP better)\nlabels: ratio (DP/uniform calls)")
    ax3.legend(fontsize=7)
    lowest = min(100 * r["accuracy"] for r in rows)
    ax4.set_ylim(min(90.0, lowest - 1), 100.5)
    ax4.set(xlabel="sharing ratio", ylabel="class accuracy (%)", title="recognised as their class")
    ax4.legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(f"bundled digits DDT: {result['samples']} samples x seeds {result.get('seeds', [result.get('seed')])}, "
                 f"{result['steps']} steps", fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)
