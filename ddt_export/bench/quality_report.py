"""The quality result as people read it: a rich table (`table`) and a four-panel PNG (`plot`), from the JSON alone."""

from __future__ import annotations

from pathlib import Path

from .judges import FeatureSpaces


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


def _paired_cell(result: dict, r: dict) -> str:
    """A row's paired column: DP (or DP at uniform's calls) minus uniform, or the relative change from fp32."""
    ratio_key = f"{r['solver']} {r['steps']} {r['ratio']:g}" if result.get("solver_axis") else f"{r['ratio']:g}"
    if r.get("precision", "fp32") != "fp32":
        return _fmt_cmp(result.get("precision_vs_fp32", {}).get(f"{r['precision']} {r['ratio']:g} {r['schedule']}"), rel=True)
    if r["schedule"] == "dp":
        d = result.get("dp_vs_uniform", {}).get(ratio_key)
        return _fmt_cmp(d) if d and "by_space" in d else (f"{d['dp_minus_uniform']:+.3f}" if d else "")
    if r["schedule"] == "dp@uniform":
        return _fmt_cmp(result.get("dp_equal_calls_vs_uniform", {}).get(ratio_key))
    return ""


def table(result: dict):
    """One line per row; the paired column is DP (or DP at uniform's calls) minus uniform for fp32 sharing rows, and the
    relative change from fp32 at the same ratio for other precisions."""
    from rich.table import Table

    seeds = result.get("seeds", [result.get("seed")])
    axis = bool(result.get("solver_axis"))
    t = Table(title=f"quality ({result['samples']} samples x seeds {seeds}, "
                    + ("guidance " + f"{result['sampler']['guidance']:g})" if axis else f"{result['steps']} steps)"))
    for col in (("solver", "steps") if axis else ()) + ("precision", "ratio", "schedule", "calls", "accuracy", "Frechet mlp / pca16 / pixels",
                "paired diff: mlp [95% CI] / pca16 / pixels") + (("vs baseline mlp / pca16 / pixels", "fidelity") if axis else ()) + ("seconds",):
        t.add_column(col, justify="right")
    for r in result["rows"]:
        fs = r.get("frechet_by_space") or {"mlp": r["frechet"]}
        fr = " / ".join(f"{v:.3f}" + (f"±{r.get('frechet_std', 0):.3f}" if k == "mlp" else "") for k, v in fs.items())
        cells = [r.get("precision", "fp32"), f"{r['ratio']:.2f}", r["schedule"], str(r["encoder_calls"]), f"{100 * r['accuracy']:.1f}%",
                 fr, _paired_cell(result, r)]
        if axis:
            cells = [r["solver"], str(r["steps"])] + cells + [_baseline_cell(result, r), "" if r["fidelity"] is None else f"{r['fidelity']:.2e}"]
        t.add_row(*cells, f"{r['latency_s']:.1f}")
    if "real_floor" in result:
        by = result["real_floor"].get("by_space", {"mlp": result["real_floor"]["frechet"]})
        t.caption = (f"paired diff: DP rows minus uniform; other precisions vs fp32 at the same ratio, in %. "
                     f"floor ({result['real_floor']['what']}): " + " / ".join(f"{k} {v:.3f}" for k, v in by.items()))
    return t


def _baseline_cell(result: dict, r: dict) -> str:
    """A row against the frontier's baseline: relative Frechet per space, and "ok" when within +3% in every space and seed."""
    f = result.get("frontier")
    key = f"{r.get('precision', 'fp32')} {r['ratio']:g} {r['schedule']} {r['solver']} {r['steps']}"
    if not f or key not in f["vs_baseline"]:
        return "baseline" if f and key == f["baseline"] else ""
    v = f["vs_baseline"][key]
    return " / ".join(f"{100 * v['by_space'][k]['rel']:+.1f}%" for k in FeatureSpaces.NAMES) + (" ok" if v["within"] else "")


def frontier_table(result: dict):
    """Per solver: the fewest network calls within +3% of the baseline in every space and seed, and the largest sharing
    ratio within +3% of the same solver without sharing."""
    from rich.table import Table

    f = result["frontier"]
    t = Table(title=f"fewest network calls within +{100 * f['within']:.0f}% of {f.get('baseline_solver', f['baseline'])} (every judge, every seed)")
    for col in ("solver", "row", "network calls", "encoder calls", "largest sharing ratio within +3% (dp / uniform)"):
        t.add_column(col, justify="right")
    for name, best in f["fewest_calls"].items():
        ratios = f["largest_ratio_within"]
        share = " / ".join(f"{ratios.get(f'{name} {s}', 0):g}" for s in ("dp", "uniform"))
        t.add_row(name, best["row"] if best else "none", str(best["network_calls"]) if best else "-",
                  str(best["encoder_calls"]) if best else "-", share)
    return t


def plot(result: dict, path: Path) -> None:
    """Distance to real digits vs ratio, precision cost, DP vs uniform, accuracy: one panel each, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..files import atomic_write

    rows = result["rows"]
    spaces = list(rows[0].get("frechet_by_space") or {"mlp": 0})
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.4), dpi=110)
    if "frontier" in result:
        _frontier(axes, result, spaces)
    else:
        _distance_and_accuracy(axes[0], axes[3], rows)
        _precision_cost(axes[1], result.get("precision_vs_fp32", {}), spaces)
        _dp_vs_uniform(axes[2], result, spaces)
    for ax in axes:
        ax.grid(alpha=0.3)
    steps = "solver axis" if "frontier" in result else f"{result['steps']} steps"
    fig.suptitle(f"bundled digits DDT: {result['samples']} samples x seeds {result.get('seeds', [result.get('seed')])}, {steps}, "
                 f"guidance {result.get('sampler', {}).get('guidance', '?')}", fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)


def _distance_and_accuracy(ax1, ax4, rows: list[dict]) -> None:
    """Panels 1 and 4: Frechet (mlp) and class accuracy vs ratio, one line per precision and schedule."""
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r.get("precision", "fp32"), r["schedule"]), []).append(r)
    base = {p: [r for r in rows if r.get("precision", "fp32") == p and r["ratio"] == 0] for p, _ in groups}
    for (p, schedule), rs in groups.items():
        if schedule == "none":
            continue
        rs = sorted(base.get(p, []) + rs, key=lambda r: r["ratio"])
        ax1.errorbar([r["ratio"] for r in rs], [r["frechet"] for r in rs], yerr=[r.get("frechet_std", 0) for r in rs],
                     marker="o" if schedule == "uniform" else "s", capsize=2, label=f"{p} {schedule}", alpha=0.85)
        ax4.plot([r["ratio"] for r in rs], [100 * r["accuracy"] for r in rs], marker=".", label=f"{p} {schedule}")
    ax1.set(xlabel="sharing ratio", ylabel="Frechet distance, mlp features", title="distance to real digits (lower is better)")
    ax1.legend(fontsize=7)
    lowest = min(100 * r["accuracy"] for r in rows)
    ax4.set_ylim(min(90.0, lowest - 1), 100.5)
    ax4.set(xlabel="sharing ratio", ylabel="class accuracy (%)", title="recognised as their class")
    ax4.legend(fontsize=7)


def _relative_errorbars(ax, comparisons: list[dict], spaces: list[str]) -> None:
    """Each comparison's relative difference per space, side by side, with its 95% interval."""
    for j, space in enumerate(spaces):
        xs, ys, lo, hi = [], [], [], []
        for i, v in enumerate(comparisons):
            c = v["by_space"][space]
            xs.append(i + (j - 1) * 0.22)
            ys.append(100 * c["rel"])
            lo.append(max(0.0, 100 * (c["rel"] - c["rel_ci95"][0])))  # a percentile interval need not contain the estimate
            hi.append(max(0.0, 100 * (c["rel_ci95"][1] - c["rel"])))
        ax.errorbar(xs, ys, yerr=[lo, hi], marker="os^"[j % 3], ls="none", capsize=2, label=space)


def _precision_cost(ax, vs: dict, spaces: list[str]) -> None:
    """Panel 2: each precision vs fp32 at the same ratio, relative, per space, with the +3% goal."""
    _relative_errorbars(ax, list(vs.values()), spaces)
    ax.set_xticks(range(len(vs)), [k.replace(" uniform", "").replace(" none", "") for k in vs], rotation=60, fontsize=7)
    ax.axhline(3, color="red", lw=0.8, ls="--", label="+3% goal")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(ylabel="Frechet vs fp32 at the same ratio (%)", title="precision cost, paired, 95% bootstrap interval")
    ax.legend(fontsize=7)


def _dp_vs_uniform(ax, result: dict, spaces: list[str]) -> None:
    """Panel 3: DP minus uniform (at DP's own calls, and at equal calls) per space."""
    items = [(f"{k} ({v['calls'][0]}/{v['calls'][1]})", v) for k, v in result.get("dp_vs_uniform", {}).items() if "by_space" in v]
    items += [(f"{k} eq ({v['calls'][0]}/{v['calls'][1]})", v) for k, v in result.get("dp_equal_calls_vs_uniform", {}).items()]
    _relative_errorbars(ax, [v for _, v in items], spaces)
    ax.set_xticks(range(len(items)), [k for k, _ in items], rotation=60, fontsize=7)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(ylabel="Frechet, DP vs uniform (%)", title="DP vs uniform, paired (below 0: DP better)\nlabels: ratio (DP/uniform calls)")
    ax.legend(fontsize=7)


def _frontier(axes, result: dict, spaces: list[str]) -> None:
    """Panels 1-3: Frechet relative to the baseline vs network calls, per space, one line per solver and schedule;
    panel 4: fidelity to the converged reference vs network calls (log-log)."""
    f = result["frontier"]
    groups: dict[tuple, list] = {}
    for r in result["rows"]:
        groups.setdefault((r["solver"], r["schedule"]), []).append(r)
    style = {"none": "-", "dp": "--", "uniform": ":", "dp@uniform": "-."}
    for (solver, schedule), rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: r["steps"])
        keys = [f"{r.get('precision', 'fp32')} {r['ratio']:g} {r['schedule']} {r['solver']} {r['steps']}" for r in rs]
        for ax, space in zip(axes, spaces):
            pts = [(r["steps"], 100 * f["vs_baseline"][k]["by_space"][space]["rel"]) for r, k in zip(rs, keys) if k in f["vs_baseline"]]
            if pts:
                ax.plot(*zip(*pts), style.get(schedule, "-"), marker="o", ms=3, label=f"{solver} {schedule}")
        fid = [(r["steps"], r["fidelity"]) for r in rs if r.get("fidelity") is not None]
        if fid:
            axes[3].loglog(*zip(*fid), style.get(schedule, "-"), marker="o", ms=3, label=f"{solver} {schedule}")
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    for ax, space in zip(axes, spaces):
        ax.axhline(100 * f["within"], color="red", lw=0.8, ls="--")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set(xlabel="network calls (steps)", ylabel=f"Frechet vs {f.get('baseline_solver', f['baseline'])} (%)",
               title=f"{space} judge (red: +3%)")
        ax.set_ylim(-20, 100)
    ticks = sorted({r["steps"] for r in result["rows"]})
    for ax in axes:  # the step counts run, plainly, on the log axis (not 4x10^0)
        ax.set_xticks(ticks)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    axes[0].legend(fontsize=6, ncol=2)
    axes[3].set(xlabel="network calls (steps)", ylabel="relative L2 to the converged reference", title="fidelity (judge-free)")
