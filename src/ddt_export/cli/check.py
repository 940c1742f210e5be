"""`ddt-export check BUILD`: how a build's precision holds up against fp32, as tables or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console, Group
from rich.table import Table

console = Console(stderr=True, soft_wrap=True)


def _fmt(v: float) -> str:
    return f"{v:.2e}"


def render(report: dict) -> Group:
    head = Table.grid(padding=(0, 2))
    head.add_row("[bold]build[/]", f"{report['build']} ({report['precision']})")
    head.add_row("[bold]reference[/]", report["reference"])
    if report["emulated"]:
        head.add_row("[bold]note[/]", report["emulated"])
    errors = Table(title="error vs fp32 (rel = max|err| / max|fp32|)", title_justify="left")
    for col in ("graph", "t", "max abs", "max rel", "rel L2", "finite", "max |out|"):
        errors.add_column(col, justify="right" if col not in ("graph",) else "left")
    for name, e in report["graphs"].items():
        errors.add_row(name, "all", _fmt(e["max_abs_error"]), _fmt(e["max_rel_error"]), _fmt(e["rel_l2_error"]), str(e["finite"]), _fmt(e["max_abs_output"]))
    for row in report["per_t"]:
        for name in ("encoder", "decoder"):
            e = row[name]
            errors.add_row(f"  {name}", f"{row['t']:g}", _fmt(e["max_abs_error"]), _fmt(e["max_rel_error"]), _fmt(e["rel_l2_error"]), str(e["finite"]), _fmt(e["max_abs_output"]))
    r = report["sampling_run"]
    errors.add_row(f"sampling run ({r['steps']} steps, batch {r['batch']}, cfg {r['guidance']:g})", "0->1", _fmt(r["max_abs_error"]),
                   _fmt(r["max_rel_error"]), _fmt(r["rel_l2_error"]), str(r["finite"] and r["nonfinite_values_seen"] == 0), _fmt(r["max_abs_output"]))
    mags = Table(title="largest activations of the fp32 model on the same inputs (fp16 max 65504)", title_justify="left")
    for col in ("site", "max |value|", "of fp16 max", "where"):
        mags.add_column(col, justify="right" if col in ("max |value|", "of fp16 max") else "left")
    for site, m in report["activation_magnitudes"].items():
        mags.add_row(site, _fmt(m["max_abs"]), f"{m['fraction_of_fp16_max']:.1e}", m["where"])
    isl = Table(title="nodes per site by the dtype they compute in (fp32 islands)", title_justify="left")
    for col in ("site", "encoder", "decoder"):
        isl.add_column(col)
    sites = sorted(set(report["fp32_islands"]["encoder"]) | set(report["fp32_islands"]["decoder"]))
    fmt = lambda d: ", ".join(f"{k} {v}" for k, v in sorted(d.items())) or "-"  # noqa: E731
    for site in sites:
        isl.add_row(site, fmt(report["fp32_islands"]["encoder"].get(site, {})), fmt(report["fp32_islands"]["decoder"].get(site, {})))
    return Group(head, errors, mags, isl)


def check(
    build_dir: Path = typer.Argument(..., help="A build folder (fp16 or bf16; an fp32 one checks against PyTorch)."),
    against: Optional[Path] = typer.Option(None, help="An fp32 build of the same model: compare with its graphs instead of PyTorch."),
    steps: Optional[int] = typer.Option(None, help="Steps of the sampling run [default: the build's, at most 50]."),
    batch: int = typer.Option(2, help="Samples in the sampling run."),
    seed: int = typer.Option(0, help="Seed of the inputs, noise and labels."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout instead of tables."),
    out: Optional[Path] = typer.Option(None, help="Also write the JSON report to this file."),
):
    """Measure a build's precision: per-graph and whole-run error vs fp32 at t near 0 and 1, activation magnitudes, fp32 islands."""
    from ..precision import check as run_check

    with console.status("checking") as status:
        report = run_check(build_dir, against, steps=steps, batch=batch, seed=seed, progress=lambda msg: status.update(msg))
    text = json.dumps(report, indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    if as_json:
        print(text)
    else:
        Console().print(render(report))


def engines(
    build_dir: Path = typer.Argument(..., help="A build folder; its ONNX graphs are built into TensorRT engines here."),
    max_batch: Optional[int] = typer.Option(None, help="Largest user batch (CFG batch twice it) [default: as before, else 4]."),
    opt_level: Optional[int] = typer.Option(None, help="TensorRT builder optimisation level 0-5 [default: as before, else 3]."),
):
    """(Re)build a build's TensorRT engines on this GPU machine (after a TensorRT or GPU change)."""
    from ..tensorrt.engines import rebuild_engines

    with console.status("building engines") as status:
        m = rebuild_engines(build_dir, max_batch=max_batch, opt_level=opt_level, progress=lambda msg: status.update(msg))
    e = m.data["engines"]
    console.print(f"engines for {e['gpu']} (sm {e['compute_capability']}, TensorRT {e['tensorrt']}, {e['precision']}, "
                  f"CFG batch {e['cfg_batch']['min']}..{e['cfg_batch']['max']}) -> {m.root}")
