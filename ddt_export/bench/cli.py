"""The `ddt-bench` command line: latency (sharing ratios), precision (int8 vs bf16 vs fp32), quality.

Like `ddt-export`, every command checks its input and output paths before any work and fails
through errors.run: one line, exit 2.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer

from ..cli import CFG, LABELS_HELP, ORDER, RATIOS_TEXT, SAMPLER, console, ints, seed_option, stdout
from ..errors import DDTError, run
from ..labels import whole_parser
from ..files import check_output_dir, check_output_file, write_json_atomic

app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False,
                  help="Benchmarks of a ddt-export build: latency against the ideal and PyTorch, int8 against bf16, quality.")


def main() -> None:
    run(app)


@app.callback()
def _bench_group() -> None:
    """Benchmarks of a ddt-export build."""  # a callback keeps `ddt-bench latency` a subcommand


@app.command()
def latency(
    build_dir: Path = typer.Argument(..., help="A build folder from `ddt-export build`."),
    backend: str = typer.Option("onnxruntime", help="onnxruntime, openvino, torch or tensorrt."),
    ratios: str = typer.Option(RATIOS_TEXT, help="Sharing ratios in [0, 1); 0 (the baseline) is always measured."),
    steps: int = typer.Option(50, parser=whole_parser("--steps"), help="Sampling steps N."),
    cfg: Optional[float] = CFG,
    sampler: Optional[str] = SAMPLER,
    order: Optional[int] = ORDER,
    batch: int = typer.Option(1, parser=whole_parser("--batch"), help="User batch B (the graphs run at CFG batch 2B)."),
    schedule: str = typer.Option("uniform", help="uniform or dp (dp calibrates once if the build has no matrix for N steps)."),
    repeat: int = typer.Option(3, parser=whole_parser("--repeat"), help="Timed runs per ratio (median, min and max are reported)."),
    reference: bool = typer.Option(True, "--reference/--no-reference", help="Also time PyTorch eager fp32 and bf16 autocast at ratio 0."),
    labels: Optional[str] = typer.Option(None, help=LABELS_HELP + " Used in turn to fill --batch [default: 1, 8, 15, ...]."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full result as JSON."),
    plot: Optional[Path] = typer.Option(None, help="Write latency and speed-up vs ratio as a PNG."),
):
    """Time the whole sampling loop per sharing ratio; compare with the ideal speed-up and with PyTorch."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from . import latency as bench
    from .report import render
    from ..manifest import read

    from ..class_names import resolve, split_labels

    entries = split_labels(labels, "--labels")
    opts = bench.Options(backend=backend, ratios=bench.parse_ratios(ratios), steps=steps, guidance=cfg, sampler=sampler, order=order,
                         batch=batch, schedule=schedule, repeat=repeat, reference=reference).validate()
    check_output_file(json_out, "--json", (".json",))
    check_output_file(plot, "--plot", (".png",))
    m = read(build_dir, verify=False)  # a missing or foreign folder fails now, in one line, before any loading
    if entries:  # names resolve against the build's own names, before any loading
        opts = replace(opts, labels=tuple(resolve(entries, m.class_names, "--labels")))
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                   transient=True, disable=not console.is_terminal)
    task = bar.add_task("loading", total=None)
    with bar:
        res = bench.run(build_dir, opts, progress=lambda msg, done, total: bar.update(task, description=msg, completed=done, total=total))
    stdout().print(render(res))
    if json_out is not None:
        write_json_atomic(json_out, res)
        console.print(f"JSON -> {json_out}")
    if plot is not None:
        from .plot import latency_plot

        console.print(f"plot -> {latency_plot(res, plot)}")


@app.command()
def quality(
    build_dir: Path = typer.Argument(Path("engines/digits"), help="A build of the bundled digits model."),
    samples: int = typer.Option(1000, parser=whole_parser("--samples"), help="Samples per configuration (labels i % 10, noise from --seed)."),
    steps: Optional[int] = typer.Option(None, parser=whole_parser("--steps"), help="Sampling steps [default: the build's]."),
    ratios: str = typer.Option(RATIOS_TEXT, help="Sharing ratios in [0, 1)."),
    seed: str = typer.Option("0", metavar="<int>", help="Noise seed (0 to 2^64 - 1)."),
    seeds: Optional[str] = typer.Option(None, help="Noise seeds pooled per row, e.g. 0,1 [default: SEED and SEED+1]."),
    precisions: str = typer.Option("fp32", help="Precision axis, e.g. fp32,bf16,int8,fp8 (int8/fp8 built from the model unless given)."),
    precision_ratios: str = typer.Option("0,0.75,0.87", help="Sharing ratios of the precision axis (uniform schedules)."),
    equal_calls: bool = typer.Option(True, "--equal-calls/--no-equal-calls", help="Also run DP at uniform's encoder calls where the DP gets fewer."),
    int8: Optional[Path] = typer.Option(None, "--int8", help="An int8 build of the same model [default: built into --work]."),
    fp8: Optional[Path] = typer.Option(None, "--fp8", help="An fp8 build of the same model [default: built into --work]."),
    work: Optional[Path] = typer.Option(None, help="Folder to build int8/fp8 into and keep [default: a temp folder]."),
    backend: str = typer.Option("onnxruntime"),
    cfg: Optional[float] = CFG,
    solvers: Optional[str] = typer.Option(None, help="Solver axis, e.g. euler,adams2,adams3,adams4 (adamsK: Adams of order K) [default: the build's]."),
    step_counts: Optional[str] = typer.Option(None, help="Steps of the solver axis, e.g. 5,8,10,16,25,50 [default: --steps]."),
    baseline: Optional[str] = typer.Option(None, help="SOLVER:STEPS, e.g. euler:250: also run it (no sharing) and report the fewest calls within +3% of it."),
    reference_steps: int = typer.Option(0, parser=whole_parser("--reference-steps"), help="Fidelity column: relative L2 to Euler at this many steps (e.g. 2000; 0: none)."),
    fidelity_samples: int = typer.Option(20, parser=whole_parser("--fidelity-samples"), help="Samples per seed the fidelity column measures (the first ones)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the result as JSON."),
    plot: Optional[Path] = typer.Option(None, help="PNG: Frechet distance and accuracy vs ratio, one line per schedule (the frontier with --baseline)."),
):
    """Quality vs sharing ratio (uniform vs DP, also at equal encoder calls) and precision, in three feature spaces."""
    from ..manifest import read
    from . import quality as bench
    from .latency import parse_ratios

    check_output_file(json_out, "--json", (".json",))
    check_output_file(plot, "--plot", (".png",))
    read(build_dir, verify=False)  # a missing or foreign folder fails now, in one line
    if work is not None:
        check_output_dir(work, "--work")
    builds = {}
    for name, path in (("int8", int8), ("fp8", fp8)):
        if path is not None:
            got = read(path, verify=False).precision
            if got != name:
                raise DDTError(f"--{name} {path} is not an {name} build (its precision is {got}); give an {name} build of the same model")
            builds[name] = path

    with console.status("quality benchmark") as status:  # a log gets a line per step: the spinner is silent there
        progress = (lambda msg: status.update(msg)) if console.is_terminal else console.print
        opts = bench.Options(samples=samples, steps=steps, seed=seed_option(seed), backend=backend, ratios=parse_ratios(ratios),
                             seeds=None if seeds is None else tuple(seed_option(str(s), "--seeds") for s in ints(seeds, "--seeds")),
                             precisions=_names(precisions),
                             precision_ratios=parse_ratios(precision_ratios, "--precision-ratios"), equal_calls=equal_calls, builds=builds, work_dir=work,
                             guidance=cfg, solvers=_names(solvers), step_counts=tuple(ints(step_counts, "--step-counts") or ()),
                             baseline=baseline, reference_steps=reference_steps, fidelity_samples=fidelity_samples).validate()
        res = bench.run(build_dir, opts, progress=progress)
    stdout().print(bench.table(res))
    if "frontier" in res:
        stdout().print(bench.frontier_table(res))
    if json_out is not None:
        write_json_atomic(json_out, res)
    if plot is not None:
        bench.plot(res, plot)


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip()) if text else ()


@app.command()
def precision(
    fp32_build: Path = typer.Argument(..., help="An fp32 build (`ddt-export build`)."),
    int8_build: Path = typer.Argument(..., help="An int8 build of the same model (`ddt-export build --precision int8`)."),
    steps: int = typer.Option(16, parser=whole_parser("--steps"), help="Sampling steps N."),
    batch: int = typer.Option(1, parser=whole_parser("--batch"), help="User batch B (the graphs run at CFG batch 2B)."),
    ratios: str = typer.Option("0,0.75", help="Sharing ratios (uniform schedules) of the whole runs."),
    repeat: int = typer.Option(3, parser=whole_parser("--repeat"), help="Timed runs per row and ratio (median reported)."),
    calls: int = typer.Option(5, parser=whole_parser("--calls"), help="Per-call timings per graph (median reported)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the result as JSON."),
):
    """int8 (onnxruntime and OpenVINO) vs OpenVINO bf16 vs onnxruntime fp32: whole runs and per call, in one process."""
    from . import precision as bench
    from .latency import parse_ratios

    opts = bench.Options(steps=steps, batch=batch, ratios=parse_ratios(ratios), repeat=repeat, calls=calls).validate()
    check_output_file(json_out, "--json", (".json",))
    bench.check_builds(fp32_build, int8_build)  # wrong or mismatched folders fail now, in one line
    with console.status("precision benchmark") as status:
        res = bench.run(fp32_build, int8_build, opts, progress=(lambda m: status.update(m)) if console.is_terminal else console.print)
    stdout().print(bench.table(res))
    if json_out is not None:
        write_json_atomic(json_out, res)
        console.print(f"JSON -> {json_out}")
