"""The latency result as people read it: a rich table and a few summary lines."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text


def _ms(v: float) -> str:
    return f"{v / 1e3:.2f} s" if v >= 1e4 else f"{v:.0f} ms" if v >= 100 else f"{v:.1f} ms"


def _unit(res: dict) -> tuple[str, float]:
    """One unit for the whole table, from the baseline's median: s above a second, else ms."""
    return ("s", 1e3) if res["rows"][0]["latency_ms"]["median"] >= 1e3 else ("ms", 1.0)


def latency_table(res: dict) -> Table:
    unit, div = _unit(res)
    fmt = (lambda v: f"{v / div:.2f}") if unit == "s" else (lambda v: f"{v:.1f}")
    t = Table(title=f"{res['model']} on {res['backend']} ({res['compute_precision']}): {res['steps']} steps, batch {res['batch']} "
                    f"(CFG {res['cfg_batch']}), {res['threads']} threads, median of {res['repeat']}")
    for col in ("ratio", "schedule", "enc calls", f"latency ({unit})", f"min-max ({unit})", "speedup", "ideal (calls)", "eff.",
                "ideal (FLOPs)", "eff. (FLOPs)", f"full CFG ({unit})", "skip speedup", "skip ideal", "vs torch fp32"):
        t.add_column(col, justify="right")
    ref_fp32 = next((r["latency_ms"]["median"] for r in res["reference"] if r["name"] == "torch-fp32"), None)
    for r in res["rows"]:
        lat = r["latency_ms"]
        t.add_row(
            f"{r['ratio']:.2f}", r["schedule"], str(r["encoder_calls"]), fmt(lat["median"]), f"{fmt(lat['min'])}-{fmt(lat['max'])}",
            f"{r['speedup']:.2f}x", f"{r['ideal_speedup']:.2f}x", f"{100 * r['efficiency']:.0f}%",
            f"{r['flop_ideal_speedup']:.2f}x", f"{100 * r['flop_efficiency']:.0f}%",
            fmt(r["latency_full_cfg_ms"]["median"]), f"{r['skip_speedup']:.3f}x", f"{r['skip_flop_ideal']:.3f}x",
            "" if r["vs_torch_fp32"] is None else f"{r['vs_torch_fp32']:.2f}x",
        )
    for ref in res["reference"]:
        lat = ref["latency_ms"]
        t.add_row(f"{ref['ratio']:.2f}", ref["name"], str(ref["encoder_calls"]), fmt(lat["median"]),
                  f"{fmt(lat['min'])}-{fmt(lat['max'])}", "", "", "", "", "", "", "", "",
                  f"{ref_fp32 / lat['median']:.2f}x" if ref_fp32 else "", style="dim")
    return t


def summary(res: dict) -> Text:
    g, c, o = res["graphs"], res["ceiling_gflops"], res["overhead"]
    lines = [
        f"per call at CFG batch {res['cfg_batch']}: encoder {_ms(res['encoder_ms'])}, decoder {_ms(res['decoder_ms'])}",
        f"achieved: encoder {g['encoder']['gflops']:.0f} GFLOP/s ({100 * g['encoder']['fraction_of_ceiling']:.0f}% of the "
        f"{c['ceiling_precision']} matmul ceiling), decoder {g['decoder']['gflops']:.0f} GFLOP/s "
        f"({100 * g['decoder']['fraction_of_ceiling']:.0f}%); ceiling measured now: fp32 {c['fp32']:.0f}, bf16 {c['bf16']:.0f} GFLOP/s",
        f"loop overhead: {o['per_step_ms']:.3f} ms per step = {100 * o['fraction_of_decoder']:.2g}% of a decoder call",
        f"guidance-aware batches: {res['guided_steps']} of {res['steps']} steps guided, the rest run the conditional half alone; "
        f"latents vs the full CFG batch (ratio 0): max rel. error {res['skip_vs_full_cfg_error']:.1e}",
    ]
    for ref in res["reference"]:
        err = "" if ref["error_vs_torch_fp32"] is None else f", latents differ from fp32 by {ref['error_vs_torch_fp32']:.1e}"
        lines.append(f"{ref['name']}: encoder {_ms(ref['encoder_ms'])}, decoder {_ms(ref['decoder_ms'])} per call; "
                     f"at ratio 0 {res['backend']} runs the loop {ref['runtime_speedup']:.2f}x as fast{err}")
    if res["latents_error_vs_torch_fp32"] is not None:
        lines.append(f"{res['backend']} latents vs torch fp32 (same noise, ratio 0): max rel. error {res['latents_error_vs_torch_fp32']:.1e}")
    if len(res["rows"]) > 1:
        lines.append("speed-up by this process's CPU time (insensitive to other processes): "
                     + ", ".join(f"{r['ratio']:.2f}: {r['cpu_speedup']:.2f}x" for r in res["rows"][1:]))
    m, load = res["machine"], res["load_average"]
    lines.append(f"machine: {m['cpu']}, {m['physical_cores']} cores, {m['memory_gib']} GiB; "
                 f"load average {load['start'][0] if load['start'] else '?'} -> {load['end'][0] if load['end'] else '?'}")
    cores = m["physical_cores"] or 1
    if load["start"] and max(load["start"][0], load["end"][0]) > cores + 0.5:
        lines.append("warning: the machine was loaded by other processes (load average above the core count); the numbers are noisy")
    return Text("\n".join(lines))


def render(res: dict) -> Group:
    return Group(latency_table(res), summary(res))
