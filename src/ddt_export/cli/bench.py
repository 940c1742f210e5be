"""`ddt-bench`: measurements of a build. `latency` times the sampling loop per sharing ratio.

One typer app with one command per benchmark (`latency` here; others join as commands).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ..errors import DDTError
from . import errors

app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False,
                  help="Benchmarks of a ddt-export build: latency against the ideal and against PyTorch.")
console = Console(stderr=True)


@app.callback()
def _group() -> None:
    """Benchmarks of a ddt-export build."""  # a callback keeps `ddt-bench latency` a subcommand while it is the only one


@app.command()
def latency(
    build_dir: Path = typer.Argument(..., help="A build folder from `ddt-export build`."),
    backend: str = typer.Option("onnxruntime", help="onnxruntime, openvino, torch or tensorrt."),
    ratios: str = typer.Option("0,0.5,0.66,0.75,0.8,0.83,0.87", help="Sharing ratios in [0, 1); 0 (the baseline) is always measured."),
    steps: int = typer.Option(50, help="Sampling steps N."),
    batch: int = typer.Option(1, help="User batch B (the graphs run at CFG batch 2B)."),
    schedule: str = typer.Option("uniform", help="uniform or dp (dp calibrates once if the build has no matrix for N steps)."),
    repeat: int = typer.Option(3, help="Timed runs per ratio (median, min and max are reported)."),
    reference: bool = typer.Option(True, "--reference/--no-reference", help="Also time PyTorch eager fp32 and bf16 autocast at ratio 0."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full result as JSON."),
    plot: Optional[Path] = typer.Option(None, help="Write latency and speed-up vs ratio as a PNG."),
):
    """Time the whole sampling loop per sharing ratio; compare with the ideal speed-up and with PyTorch."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..bench import latency as bench
    from ..bench.report import render
    from ..manifest import read, write_json_atomic

    opts = bench.Options(backend=backend, ratios=bench.parse_ratios(ratios), steps=steps, batch=batch, schedule=schedule,
                         repeat=repeat, reference=reference).validate()
    if plot is not None and plot.suffix.lower() != ".png":
        raise DDTError(f"--plot writes a PNG; give a file name ending in .png (got {plot})")
    read(build_dir, verify=False)  # a missing or foreign folder fails now, in one line, before any loading
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                   transient=True, disable=not console.is_terminal)
    task = bar.add_task("loading", total=None)
    with bar:
        res = bench.run(build_dir, opts, progress=lambda msg, done, total: bar.update(task, description=msg, completed=done, total=total))
    _stdout().print(render(res))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(json_out, res)
        console.print(f"JSON -> {json_out}")
    if plot is not None:
        from ..bench.plot import latency_plot

        console.print(f"plot -> {latency_plot(res, plot)}")


@app.command()
def quality(
    build_dir: Path = typer.Argument(Path("engines/digits"), help="A build of the bundled digits model."),
    samples: int = typer.Option(1000, help="Samples per configuration (labels i % 10, noise from --seed)."),
    steps: Optional[int] = typer.Option(None, help="Sampling steps [default: the build's]."),
    ratios: str = typer.Option("0,0.5,0.66,0.75,0.8,0.83,0.87", help="Sharing ratios in [0, 1)."),
    seed: int = typer.Option(0),
    backend: str = typer.Option("onnxruntime"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the result as JSON."),
    plot: Optional[Path] = typer.Option(None, help="PNG: Frechet distance and accuracy vs ratio, one line per schedule."),
):
    """Quality vs sharing ratio, uniform vs DP: accuracy and a Frechet distance by an independent digits classifier."""
    from ..bench import quality as bench
    from ..bench.latency import parse_ratios
    from ..manifest import write_json_atomic

    with console.status("quality benchmark") as status:
        def progress(msg: str) -> None:
            status.update(msg)
            if not console.is_terminal:  # the spinner is silent in a log; a 20-minute run should still show where it is
                console.print(msg)

        res = bench.run(build_dir, samples=samples, steps=steps, seed=seed, backend=backend, ratios=parse_ratios(ratios),
                        progress=progress)
    _stdout().print(bench.table(res))
    if json_out is not None:
        write_json_atomic(json_out, res)
    if plot is not None:
        bench.plot(res, plot)


def _stdout() -> Console:
    """Where result tables go; piped or redirected, rich would wrap them at 80 columns."""
    out = Console()
    return out if out.is_terminal else Console(width=160)


def main() -> None:
    errors.run(app)


if __name__ == "__main__":
    main()
