"""PNG of a latency result: latency and speed-up against the sharing ratio, measured and ideal."""

from __future__ import annotations

from pathlib import Path

from ..files import atomic_write


def latency_plot(res: dict, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["rows"]
    ratios = [r["ratio"] for r in rows]
    med = [r["latency_ms"]["median"] / 1e3 for r in rows]
    lo = [m - r["latency_ms"]["min"] / 1e3 for m, r in zip(med, rows)]
    hi = [r["latency_ms"]["max"] / 1e3 - m for m, r in zip(med, rows)]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    ax1.errorbar(ratios, med, yerr=[lo, hi], marker="o", capsize=3, label=f"{res['backend']} measured (median, min-max)")
    ax1.plot(ratios, [r["latency_full_cfg_ms"]["median"] / 1e3 for r in rows], marker="s", label="measured, full CFG batch at every step")
    ax1.plot(ratios, [r["predicted_ms"] / 1e3 for r in rows], "--", marker=".", label="ideal from per-call times")
    base = rows[0]["latency_ms"]["median"] / 1e3
    ax1.plot(ratios, [base / r["flop_ideal_speedup"] for r in rows], ":", label="ideal from FLOPs")
    for ref, color in zip(res["reference"], ("tab:red", "tab:purple", "tab:brown")):
        ax1.axhline(ref["latency_ms"]["median"] / 1e3, color=color, lw=1, ls="-.", label=f"{ref['name']} (ratio 0)")
    ax1.set(xlabel="sharing ratio", ylabel="seconds per sampling run", title="latency", ylim=(0, None))
    ax1.legend(fontsize=8)
    ax2.plot(ratios, [r["speedup"] for r in rows], marker="o", label="measured")
    ax2.plot(ratios, [r["ideal_speedup"] for r in rows], "--", marker=".", label="ideal from per-call times")
    ax2.plot(ratios, [r["flop_ideal_speedup"] for r in rows], ":", marker=".", label="ideal from FLOPs (E + D) / (D + E K/N)")
    for r in rows[1:]:
        ax2.annotate(f"{100 * r['efficiency']:.0f}%", (r["ratio"], r["speedup"]), textcoords="offset points", xytext=(0, -14),
                     ha="center", fontsize=8)
    ax2.set(xlabel="sharing ratio", ylabel="speed-up over ratio 0", title="speed-up (labels: measured / ideal)")
    ax2.legend(fontsize=8)
    load = res["load_average"]["start"]
    fig.suptitle(f"{res['model']}, {res['backend']} ({res['compute_precision']}), {res['steps']} steps, batch {res['batch']}, "
                 f"{res['machine']['cpu']} x{res['threads']} threads, load {load[0] if load else '?'}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    try:  # through files.atomic_write, as every output: a unique temp name, removed on failure, the machine's errors named
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    finally:
        plt.close(fig)
    return path
