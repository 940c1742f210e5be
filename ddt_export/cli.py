"""The `ddt-export` command line: build, generate, calibrate, schedule, inspect, classes, demo, sample, check, engines.

Every command checks all its input and every output path before any work, and fails through
the one funnel (errors.run): `error: <problem and fix>`, exit 2, no traceback.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .dtypes import PRECISIONS
from .errors import DDTError, run
from .files import check_output_dir, check_output_file, load_npy, save_npy, write_json_atomic
from .graphs import DEFAULT_OPSET, check_opset
from .class_names import build_names, listing, resolve, split_labels
from .decimals import decimal, decimal_parser
from .labels import check_seed, whole_list, whole_parser
from .schedules import PAPER_RATIOS
from .backends.tensorrt.engines import DEFAULT_PROFILE_BATCH, OPT_LEVEL

RATIOS_TEXT = ",".join(f"{r:g}" for r in PAPER_RATIOS)

app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False,
                  help="Export DDT to ONNX/TensorRT and sample with encoder sharing.")
console = Console(stderr=True, soft_wrap=True)  # long paths stay on one line


def main() -> None:
    run(app)  # errors.run: one line on stderr, exit 2 for bad input, 1 for bugs


ints = whole_list  # comma-separated whole numbers in labels.py's grammar (ASCII digits, no `_`, no empty entries)


def seed_option(text: str | None, what: str = "--seed") -> int | None:
    """A seed given as text, read by labels.py's grammar: 0 to 2^64 - 1 (click's int would take `1_0` and `-1`)."""
    return None if text is None else check_seed(text, what)


def settings_overrides(steps, cfg, interval, timeshift, last_step, sampler=None, order=None) -> dict:
    """SamplerSettings fields from the options (None: the build's); their values are checked by SamplerSettings."""
    ends = [None, None] if interval is None else interval.split(",")  # each end in decimals.py's grammar, named as ddt-run does
    if len(ends) != 2:
        raise DDTError(f"--interval takes LO,HI, e.g. 0.3,1.0 (got {interval!r})")
    lo, hi = (v if v is None else decimal(v, f"--interval {end}", e) for v, end, e in zip(ends, ("LO", "HI"), ("0.3", "1.0")))
    return dict(num_steps=steps, guidance=cfg, interval_min=lo, interval_max=hi, timeshift=timeshift, last_step=last_step,
                sampler=sampler, order=order)


def build_out(out: Path) -> Path:
    """`build --out`, checked, with symlinks resolved once: `--out LINK` builds into the folder LINK points to (replacing
    the build there, under that folder's lock) and LINK stays, pointing at the new build."""
    from .build import check_destination
    from .files import resolved

    check_output_dir(out, "--out")
    real = resolved(out, "--out")
    if real != out.absolute():  # through a link: the folder actually written must pass the same checks
        check_output_dir(real, "--out")
    check_destination(real)
    return real


def schedule_option(schedule: str | None, sharing_ratio: float | None) -> str:
    """--schedule only means something with --sharing-ratio: alone it would be silently ignored, so it is refused."""
    if schedule is not None and sharing_ratio is None:
        raise DDTError(f"--schedule {schedule} picks the encoder's steps for a --sharing-ratio; add e.g. --sharing-ratio 0.75")
    return "dp" if schedule is None else schedule


def _timed_line(msg: str) -> None:
    """A build's stage in a log: the clock time says how long each stage took."""
    console.print(f"{time.strftime('%H:%M:%S')} {msg}", highlight=False)


def progress_bar(total: int, label: str):
    """A rich progress bar and the per-step callback that advances it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console, transient=True)
    task = bar.add_task(label, total=total)
    return bar, lambda i: bar.update(task, completed=i + 1)


# Number options read one grammar (labels.py, decimals.py): click's int and float take `1_0` (10), full-width digits, nan.
STEPS = typer.Option(None, parser=whole_parser("--steps", "50"), help="Sampling steps [default: the build's].")
CFG = typer.Option(None, parser=decimal_parser("--cfg", "4.0"), help="Guidance scale [default: the build's].")
INTERVAL = typer.Option(None, help="Guidance interval LO,HI (strict) [default: the build's].")
TIMESHIFT = typer.Option(None, parser=decimal_parser("--timeshift", "1.0"), help="Time shift of the grid (> 0) [default: the build's].")
LAST_STEP = typer.Option(None, parser=decimal_parser("--last-step", "0.04"), help="Size of the last step, in (0, 1) [default: the build's].")
SAMPLER = typer.Option(None, help="euler, or adams (the official Adams-Bashforth multistep sampler, one call per step) [default: the build's].")
ORDER = typer.Option(None, parser=whole_parser("--order", "2"), help="Adams order 1-4 [default: 2 with --sampler adams; Euler is order 1].")
MAX_NOISE_VALUES = 1 << 28  # 1 GiB of float32: past 1,024 samples of the largest latent; a bigger file is not read
SCHEDULE = typer.Option(None, help="dp or uniform: how --sharing-ratio picks the encoder's steps [default: dp]; needs --sharing-ratio.")
LABELS_HELP = ("Class labels: ids (1,7), or ids and names separated by ';' (\"golden retriever;tabby;7\"; names never contain "
               "';'). A name matches any synonym, case-insensitive; `ddt-export classes BUILD` lists them.")
FULL_CFG = typer.Option(False, "--full-cfg", help="Run the official full CFG batch at every step (default: only the conditional half where guidance is off; same result, faster).")


@app.command()
def build(
    preset: Optional[str] = typer.Option(None, help="Architecture: xl, l or b (with --res)."),
    res: Optional[int] = typer.Option(None, parser=whole_parser("--res", "256"), help="Image resolution 256 or 512; alone it means the xl preset."),
    config: Optional[Path] = typer.Option(None, help="Official training YAML (architecture, sampler, latent shape)."),
    ckpt: Optional[Path] = typer.Option(None, help="Lightning .ckpt or .safetensors with the weights."),
    random_weights: bool = typer.Option(False, "--random-weights", help="Random weights, for benchmarking any size."),
    raw_weights: bool = typer.Option(False, "--raw-weights", help="Use denoiser.* instead of the EMA weights."),
    trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint", help="Allow full unpickling (runs code from the file)."),
    precision: str = typer.Option("fp32", help=f"Graph precision: {', '.join(PRECISIONS)}."),
    opset: int = typer.Option(DEFAULT_OPSET, parser=whole_parser("--opset", str(DEFAULT_OPSET)), help="ONNX opset, 17 to 20."),
    vae: Optional[Path] = typer.Option(None, help="Local diffusers AutoencoderKL folder; exports its decoder too."),
    backend: str = typer.Option("onnx", help="onnx (graphs only), tensorrt (also engines; needs a GPU), or auto."),
    max_batch: Optional[int] = typer.Option(None, parser=whole_parser("--max-batch", str(DEFAULT_PROFILE_BATCH)), help=f"Largest user batch the TensorRT engines accept (the CFG batch is twice it) [default: {DEFAULT_PROFILE_BATCH}]."),
    opt_level: Optional[int] = typer.Option(None, parser=whole_parser("--opt-level", str(OPT_LEVEL)), help=f"TensorRT builder optimisation level, 0 to 5 [default: {OPT_LEVEL}]."),
    libtorch: bool = typer.Option(False, "--libtorch", help="Also export encoder and decoder for the C++ LibTorch runtime."),
    class_names: Optional[Path] = typer.Option(None, "--class-names", help="Text file, one class a line \"name, synonym, ...\", or JSON "
                                               "list [default: the config's; ImageNet-1k's for 1000 classes; else ids only]."),
    out: Optional[Path] = typer.Option(None, help="Build folder [default: engines/<name>]."),
):
    """Export encoder and decoder to ONNX, check them against PyTorch, write a manifest.

    With no model options, builds the bundled digits model.
    """
    from . import sources
    from .build import build as run_build
    from .dtypes import check_precision

    if backend not in ("onnx", "tensorrt", "auto"):
        raise DDTError(f"unknown build backend {backend!r}; choose onnx, tensorrt or auto")
    check_precision(precision)
    check_opset(opset)
    if backend == "onnx" and (max_batch, opt_level) != (None, None):  # they shape engines; --backend onnx builds none
        raise DDTError("--max-batch and --opt-level shape TensorRT engines, which --backend onnx does not build; use --backend tensorrt or auto, or leave them out")
    out = build_out(out) if out is not None else None
    engines = None
    if backend != "onnx":  # before anything is read or written: a missing TensorRT fails fast
        from .backends.tensorrt.engines import engines_extra

        engines = engines_extra(precision=precision, max_batch=DEFAULT_PROFILE_BATCH if max_batch is None else max_batch,
                                opt_level=OPT_LEVEL if opt_level is None else opt_level, required=backend == "tensorrt")
        if engines is None:
            console.print("TensorRT or a GPU is not available here: building the ONNX graphs only, engines skipped")
    src, load = sources.resolve(preset_name=preset, res=res, config=config, ckpt=ckpt, random_weights=random_weights,
                                ema=not raw_weights, trust=trust_checkpoint)
    names = build_names(src.arch.num_classes, class_names, src.extra.get("class_names"))
    out = out if out is not None else build_out(Path("engines") / src.name)
    extras = []
    if vae is not None:
        from .vae import vae_extra

        extras.append(vae_extra(vae, opset))
    extras += [engines] if engines is not None else []
    if libtorch:
        from .libtorch import libtorch_extra

        extras.append(libtorch_extra())
    model, weights_from = load()
    with console.status("building") as status:  # a log gets a line per stage: the spinner is silent there
        manifest = run_build(src, model, out, precision=precision, opset=opset, weights_from=weights_from,
                             extras=extras, progress=(lambda msg: status.update(msg)) if console.is_terminal else _timed_line,
                             class_names=names)
    for name in ("encoder", "decoder"):
        check = manifest.doc.graphs[name].check
        console.print(f"{name}: max error vs PyTorch {check.max_abs_error:.2e} (relative {check.max_rel_error:.2e})")
    if manifest.doc.quantization is not None:
        from .quant import summary

        console.print(summary(manifest.doc.quantization))
    console.print(f"built {manifest.name} ({precision}) in {manifest.doc.build_seconds:.1f}s -> {out}")


@app.command()
def generate(
    build_dir: Optional[Path] = typer.Argument(None, help="A build folder from `ddt-export build`."),
    config: Optional[Path] = typer.Option(None, help="Official YAML (with --ckpt), run in PyTorch without a build."),
    ckpt: Optional[Path] = typer.Option(None, help="Checkpoint for --config."),
    raw_weights: bool = typer.Option(False, "--raw-weights"),
    trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint"),
    backend: str = typer.Option("auto", help="auto, torch, onnxruntime, openvino or tensorrt."),
    labels: str = typer.Option(..., help=LABELS_HELP),
    seed: Optional[str] = typer.Option(None, help="Noise seed 0 to 2^64-1 (torch.randn on a CPU generator, as the official app) [default: 0]."),
    noise: Optional[Path] = typer.Option(None, help="Noise .npy of shape (B, C, H, W)."),
    steps: Optional[int] = STEPS,
    cfg: Optional[float] = CFG,
    interval: Optional[str] = INTERVAL,
    timeshift: Optional[float] = TIMESHIFT,
    last_step: Optional[float] = LAST_STEP,
    sampler: Optional[str] = SAMPLER,
    order: Optional[int] = ORDER,
    recompute: Optional[str] = typer.Option(None, help="Explicit encoder steps, e.g. 0,3,6."),
    sharing_ratio: Optional[float] = typer.Option(None, parser=decimal_parser("--sharing-ratio", "0.75"), help="Fraction of steps that reuse the encoder's state, in [0, 1)."),
    schedule: Optional[str] = SCHEDULE,
    full_cfg: bool = FULL_CFG,
    save_latents: Optional[Path] = typer.Option(None, help="Write the final latents (.npy)."),
    save_npz: Optional[Path] = typer.Option(None, help="Write uint8 images in the ADM suite's .npz format (arr_0)."),
    out: Optional[Path] = typer.Option(None, help="PNG grid of the images."),
):
    """Sample (Euler or Adams), CFG in its interval, and the encoder only at scheduled steps."""
    from .images import save_npz as write_npz, save_png
    from .pipeline import Pipeline

    if (build_dir is None) == (config is None):
        raise DDTError("give a build folder, or --config YAML --ckpt PATH (not both)")
    if out is None and save_npz is None and save_latents is None:
        raise DDTError("nothing would be saved: pass --out FILE.png, --save-npz FILE.npz or --save-latents FILE.npy")
    check_output_file(out, "--out", (".png",))
    check_output_file(save_npz, "--save-npz", (".npz",))
    check_output_file(save_latents, "--save-latents", (".npy",))
    entries, recompute_list, seed_value = split_labels(labels, "--labels"), ints(recompute, "--recompute"), seed_option(seed)
    overrides = settings_overrides(steps, cfg, interval, timeshift, last_step, sampler, order)
    schedule = schedule_option(schedule, sharing_ratio)
    noise_arr = load_npy(noise, "noise", max_elements=MAX_NOISE_VALUES) if noise is not None else None
    if config is not None:
        if ckpt is None:
            raise DDTError("--config needs --ckpt PATH")
        if backend not in ("auto", "torch"):
            raise DDTError(f"--backend {backend} runs a build folder; run `ddt-export build --config {config} --ckpt {ckpt}` first")
        pipe = Pipeline.from_official(config, ckpt, ema=not raw_weights, trust=trust_checkpoint)
    else:
        pipe = Pipeline.load(build_dir, backend)
    if out is not None or save_npz is not None:
        pipe.check_images()
    plan = pipe.plan(resolve(entries, pipe.class_names, "--labels"), seed=seed_value, noise=noise_arr, recompute=recompute_list,
                     sharing_ratio=sharing_ratio, schedule=schedule, full_cfg=full_cfg, **overrides)
    n = plan.settings.num_steps
    if plan.needs_calibration:
        console.print(f"no calibration for these settings ({n} steps) yet: running it once (8 samples) and keeping it")
        bar, advance = progress_bar(n, "calibrating")
        with bar:
            plan = pipe.calibrated(plan, progress=advance)
    bar, advance = progress_bar(n, f"sampling ({pipe.backend.name})")
    with bar:
        result = pipe.run(plan, progress=advance)
    solver = "" if plan.settings.sampler == "euler" else f" ({plan.settings.sampler}, order {plan.settings.order})"
    console.print(f"{len(plan.labels)} samples, {n} steps{solver}, encoder ran {len(result.recompute)} times (sharing ratio {result.sharing_ratio:.2f})")
    if save_latents is not None:
        save_npy(save_latents, result.latents)
        console.print(f"latents -> {save_latents}")
    if out is not None or save_npz is not None:
        images = pipe.images(result.latents)
        if save_npz is not None:
            write_npz(save_npz, images)
            console.print(f"images (ADM .npz) -> {save_npz}")
        if out is not None:
            save_png(out, images)
            console.print(f"image grid -> {out}")


@app.command()
def calibrate(
    build_dir: Path = typer.Argument(..., help="A build folder."),
    steps: int = typer.Option(..., parser=whole_parser("--steps", "50"), help="Step count the DP schedules will use."),
    cfg: Optional[float] = CFG,
    interval: Optional[str] = INTERVAL,
    timeshift: Optional[float] = TIMESHIFT,
    last_step: Optional[float] = LAST_STEP,
    sampler: Optional[str] = SAMPLER,
    order: Optional[int] = ORDER,
    samples: int = typer.Option(8, parser=whole_parser("--samples", "8"), help="Calibration batch (noise and labels from seed 0)."),
    backend: str = typer.Option("auto"),
):
    """Store the self-condition similarity matrix for these sampler settings with the build."""
    from .pipeline import Pipeline

    pipe = Pipeline.load(build_dir, backend)
    settings = pipe.defaults.with_overrides(**settings_overrides(steps, cfg, interval, timeshift, last_step, sampler, order))
    old = pipe.manifest.calibration(settings)
    if old is not None and old.samples == samples:  # asked for what is there: say so, do no work
        console.print(f"already calibrated for these settings with {samples} samples -> {pipe.manifest.path(old.file)}; nothing to do")
        return
    bar, advance = progress_bar(steps, "calibrating")
    with bar:
        stored = pipe.calibrate_and_store(settings, samples, progress=advance, replace=True)
    if not stored:
        raise DDTError(f"{build_dir} was rebuilt while calibrating; nothing was stored, run the command again")
    entry = pipe.manifest.calibration(settings)
    if entry.samples != samples:
        raise DDTError(f"another process stored a calibration of these settings meanwhile ({entry.samples} samples); run the command again")
    replaced = f" (replaced the {old.samples}-sample one)" if old is not None else ""
    console.print(f"similarity for {steps} steps, {samples} samples -> {pipe.manifest.path(entry.file)} (heatmap beside it){replaced}")


@app.command("schedule")
def schedule_cmd(
    similarity: Path = typer.Option(..., help="N x N similarity matrix (.npy)."),
    budget: int = typer.Option(..., parser=whole_parser("--budget", "4"), help="Encoder runs K (1..N)."),
    method: str = typer.Option("dp", help="dp or uniform."),
    as_json: bool = typer.Option(False, "--json", help="Print {\"recompute\": [...]} as the last line."),
):
    """Recompute steps for a budget from a similarity matrix."""
    from .schedules import MAX_DP_STEPS, at_budget

    sim = load_npy(similarity, "similarity", max_elements=MAX_DP_STEPS ** 2)  # the header is checked before the data is read
    bar, advance = progress_bar(max(1, budget - 1), f"DP over {sim.shape[0] if sim.ndim else 0} steps")
    with bar:
        steps = at_budget(sim, budget, method, progress=lambda k, K: advance(k - 2))
    print(json.dumps({"recompute": steps}) if as_json else ",".join(map(str, steps)))


@app.command()
def inspect(build_dir: Path = typer.Argument(..., help="A build folder.")):
    """What a build's manifest says, readable: model, sampler, graphs, calibrations, files."""
    from .describe import render
    from .manifest import read

    Console().print(render(read(build_dir)))


@app.command("classes")
def classes_cmd(build_dir: Path = typer.Argument(..., help="A build folder."), search: Optional[str] = typer.Option(
        None, help="Only classes with a name containing WORD (case-insensitive), or the class of that id.")):
    """The build's classes, one a line: id, a tab, its names (display name first); what --labels takes by name."""
    from .manifest import read

    print("\n".join(listing(read(build_dir), search)))


@app.command("demo")
def demo(builds: list[Path] = typer.Argument(..., help="A build folder; builds of one model, one per precision, add a precision choice."),
         host: str = typer.Option("127.0.0.1", help="Address to serve on (127.0.0.1: this machine only)."),
         port: int = typer.Option(7860, parser=whole_parser("--port", "7860"), help="Port, 1 to 65535.")):
    """A web page (Gradio) on the build's compiled graphs: pick a class by name, see images. Needs: pip install -e ".[demo]"."""
    from .demo import serve

    serve(builds, host, port, log=lambda line: console.print(line, highlight=False))


@app.command("sample")
def sample(
    build_dir: Path = typer.Argument(..., help="A build folder from `ddt-export build` (at the same path on every node)."),
    num_samples: int = typer.Option(..., "--num-samples", parser=whole_parser("--num-samples", "50000"), help="How many images, e.g. 50000 for FID."),
    classes: str = typer.Option("all", help="`all`, or the classes to sample, ids or names as generate's --labels (\"tabby;tench;7\")."),
    per_class: int = typer.Option(1, "--per-class", parser=whole_parser("--per-class"), help="Consecutive samples per class before the next one (1: classes cycled)."),
    seed: str = typer.Option("0", help="Seed 0 to 2^64-1: sample i's noise comes from (seed, i) alone, whatever the sharding."),
    batch: int = typer.Option(32, parser=whole_parser("--batch", "32"), help="Samples per shard (one backend call); part of the result's identity."),
    sharing_ratio: Optional[float] = typer.Option(None, "--sharing-ratio", parser=decimal_parser("--sharing-ratio", "0.75"), help="Fraction of steps that reuse the encoder's state, in [0, 1)."),
    schedule: Optional[str] = SCHEDULE,
    steps: Optional[int] = STEPS,
    cfg: Optional[float] = CFG,
    sampler: Optional[str] = SAMPLER,
    order: Optional[int] = ORDER,
    backend: str = typer.Option("auto", help="auto, torch, onnxruntime, openvino or tensorrt (resolved here, used by every worker)."),
    out: Optional[Path] = typer.Option(None, help="Output folder [default: samples/<build>-n<N>[-adams<K>][-<schedule><ratio>]-seed<S>]."),
    workers: Optional[int] = typer.Option(None, parser=whole_parser("--workers", "4"), help="Number of workers [default: as many as the Ray cluster holds]."),
    address: Optional[str] = typer.Option(None, help="Join this Ray cluster (HOST:PORT of `ray start --head`) [default: $RAY_ADDRESS, else `local`: a Ray started here]."),
    cpus_per_worker: float = typer.Option(1.0, "--cpus-per-worker", parser=decimal_parser("--cpus-per-worker", "1"), help="CPUs (and threads) per worker."),
    gpus_per_worker: Optional[float] = typer.Option(None, "--gpus-per-worker", parser=decimal_parser("--gpus-per-worker", "1"), help="GPUs per worker [default: 1 for tensorrt, else 0]."),
    keep_shards: bool = typer.Option(False, "--keep-shards", help="Keep the shard files after merging."),
    full_cfg: bool = FULL_CFG,
):
    """Sample N images over Ray workers: deterministic per sample, resumable, merged into samples.npz (arr_0)."""
    from .scale.run import SampleOptions, describe, sample_many

    req = SampleOptions(build=build_dir, num_samples=num_samples, classes=classes, per_class=per_class, seed=seed_option(seed), batch=batch,
                        sharing_ratio=sharing_ratio, schedule=schedule_option(schedule, sharing_ratio), steps=steps, cfg=cfg, sampler=sampler, order=order, backend=backend,
                        out=out, workers=workers,
                        address=address, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker, keep_shards=keep_shards,
                        full_cfg=full_cfg)
    for line in describe(sample_many(req, console=console)):
        console.print(line)


@app.command("check")
def check(
    build_dir: Path = typer.Argument(..., help="A build folder (fp16 or bf16; an fp32 one checks against PyTorch)."),
    against: Optional[Path] = typer.Option(None, help="An fp32 build of the same model: compare with its graphs instead of PyTorch."),
    steps: Optional[int] = typer.Option(None, parser=whole_parser("--steps", "16"), help="Steps of the sampling run [default: the build's, at most 50]."),
    batch: Optional[int] = typer.Option(None, parser=whole_parser("--batch", "2"), help="Samples in the sampling run [default: 2, or one per --labels]."),
    seed: str = typer.Option("0", help="Seed of the inputs, noise and labels (0 to 2^64-1)."),
    labels: Optional[str] = typer.Option(None, help="Labels of the sampling run [default: drawn from --seed]. " + LABELS_HELP),
    sampler: Optional[str] = SAMPLER,
    order: Optional[int] = ORDER,
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout instead of tables."),
    out: Optional[Path] = typer.Option(None, help="Also write the JSON report to this file."),
):
    """Measure a build's precision: per-graph and whole-run error vs fp32 at t near 0 and 1, activation magnitudes, fp32 islands."""
    from .precision.report import check as run_check, render

    check_output_file(out, "--out", (".json",))
    with console.status("checking") as status:
        report = run_check(build_dir, against, steps=steps, batch=batch, seed=seed_option(seed), sampler=sampler, order=order,
                           labels=split_labels(labels, "--labels"), progress=lambda msg: status.update(msg))
    if out is not None:
        write_json_atomic(out, report)
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        Console().print(render(report))


@app.command("engines")
def engines(
    build_dir: Path = typer.Argument(..., help="A build folder; its ONNX graphs are built into TensorRT engines here."),
    max_batch: Optional[int] = typer.Option(None, parser=whole_parser("--max-batch", str(DEFAULT_PROFILE_BATCH)), help=f"Largest user batch (CFG batch twice it) [default: as before, else {DEFAULT_PROFILE_BATCH}]."),
    opt_level: Optional[int] = typer.Option(None, parser=whole_parser("--opt-level", str(OPT_LEVEL)), help=f"TensorRT builder optimisation level 0-5 [default: as before, else {OPT_LEVEL}]."),
):
    """(Re)build a build's TensorRT engines on this GPU machine (after a TensorRT or GPU change)."""
    from .backends.tensorrt.engines import rebuild_engines

    with console.status("building engines") as status:
        m = rebuild_engines(build_dir, max_batch=max_batch, opt_level=opt_level, progress=lambda msg: status.update(msg))
    e = m.doc.engines
    console.print(f"engines for {e.gpu} (sm {e.compute_capability}, TensorRT {e.tensorrt}, {e.precision}, "
                  f"CFG batch {e.cfg_batch.min}..{e.cfg_batch.max}) -> {m.root}")


def stdout() -> Console:
    """Where result tables go; piped or redirected, rich would wrap them at 80 columns."""
    out = Console()
    return out if out.is_terminal else Console(width=160)


if __name__ == "__main__":
    main()
