"""`ddt-export`: build, generate, calibrate, schedule, inspect."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.console import Console

from ..errors import DDTError
from . import errors

app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False, help="Export DDT to ONNX/TensorRT and sample with encoder sharing.")
console = Console(stderr=True)


def ints(text: str | None, what: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip() != ""]
    except ValueError:
        raise DDTError(f"{what} must be comma-separated integers, e.g. 1,7 (got {text!r})") from None


def parse_interval(text: str | None) -> tuple[float | None, float | None]:
    if text is None:
        return None, None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise DDTError(f"--interval takes LO,HI, e.g. 0.3,1.0 (got {text!r})") from None
    return lo, hi


def progress_bar(total: int, label: str):
    """A rich progress bar and the per-step callback that advances it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console, transient=True)
    task = bar.add_task(label, total=total)
    return bar, lambda i: bar.update(task, completed=i + 1)


@app.command()
def build(
    preset: Optional[str] = typer.Option(None, help="Architecture: xl, l or b (with --res)."),
    res: Optional[int] = typer.Option(None, help="Image resolution 256 or 512; alone it means the xl preset."),
    config: Optional[Path] = typer.Option(None, help="Official training YAML (architecture, sampler, latent shape)."),
    ckpt: Optional[Path] = typer.Option(None, help="Lightning .ckpt or .safetensors with the weights."),
    random_weights: bool = typer.Option(False, "--random-weights", help="Random weights, for benchmarking any size."),
    raw_weights: bool = typer.Option(False, "--raw-weights", help="Use denoiser.* instead of the EMA weights."),
    trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint", help="Allow full unpickling (runs code from the file)."),
    precision: str = typer.Option("fp32", help="Graph precision: fp32, fp16 or bf16."),
    opset: int = typer.Option(18, help="ONNX opset, 17 to 20."),
    vae: Optional[Path] = typer.Option(None, help="Local diffusers AutoencoderKL folder; exports its decoder too."),
    backend: str = typer.Option("onnx", help="onnx (graphs only), tensorrt (also FP16/BF16/FP32 engines; needs a GPU), or auto."),
    max_batch: int = typer.Option(4, help="Largest user batch the TensorRT engines accept (the CFG batch is twice it)."),
    opt_level: int = typer.Option(3, help="TensorRT builder optimisation level, 0 to 5."),
    libtorch: bool = typer.Option(False, "--libtorch", help="Also export encoder and decoder for the C++ LibTorch runtime."),
    out: Optional[Path] = typer.Option(None, help="Build folder [default: engines/<name>]."),
):
    """Export encoder and decoder to ONNX, check them against PyTorch, write a manifest.

    With no model options, builds the bundled digits model.
    """
    from .. import sources
    from ..build import build as run_build

    if backend not in ("onnx", "tensorrt", "auto"):
        raise DDTError(f"unknown build backend {backend!r}; choose onnx, tensorrt or auto")
    engines = None
    if backend != "onnx":  # before anything is read or written: a missing TensorRT fails fast
        from ..tensorrt.engines import engines_extra

        engines = engines_extra(precision=precision, max_batch=max_batch, opt_level=opt_level, required=backend == "tensorrt")
        if engines is None:
            console.print("TensorRT or a GPU is not available here: building the ONNX graphs only, engines skipped")
    src, model, weights_from = sources.resolve(
        preset_name=preset, res=res, config=config, ckpt=ckpt, random_weights=random_weights, ema=not raw_weights, trust=trust_checkpoint
    )
    out = out or Path("engines") / src.name
    extras = []
    if vae is not None:
        from ..vae import vae_extra

        extras.append(vae_extra(vae, opset))
    if engines is not None:
        extras.append(engines)
    if libtorch:
        from ..libtorch import libtorch_extra

        extras.append(libtorch_extra())
    with console.status("building") as status:
        manifest = run_build(src, model, out, precision=precision, opset=opset, weights_from=weights_from,
                             extras=extras, progress=lambda msg: status.update(msg))
    for name in ("encoder", "decoder"):
        check = manifest.data["graphs"][name]["check"]
        console.print(f"{name}: max error vs PyTorch {check['max_abs_error']:.2e} (relative {check['max_rel_error']:.2e})")
    console.print(f"built {manifest.name} ({precision}) in {manifest.data['build_seconds']:.1f}s -> {out}")


@app.command()
def generate(
    build_dir: Optional[Path] = typer.Argument(None, help="A build folder from `ddt-export build`."),
    config: Optional[Path] = typer.Option(None, help="Official YAML (with --ckpt), run in PyTorch without a build."),
    ckpt: Optional[Path] = typer.Option(None, help="Checkpoint for --config."),
    raw_weights: bool = typer.Option(False, "--raw-weights"),
    trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint"),
    backend: str = typer.Option("auto", help="auto, torch, onnxruntime or tensorrt."),
    labels: str = typer.Option(..., help="Class labels, comma-separated, e.g. 1,7."),
    seed: Optional[int] = typer.Option(None, help="Noise seed (torch.randn on a CPU generator, as the official app) [default: 0]."),
    noise: Optional[Path] = typer.Option(None, help="Noise .npy of shape (B, C, H, W)."),
    steps: Optional[int] = typer.Option(None, help="Sampling steps [default: the config's]."),
    cfg: Optional[float] = typer.Option(None, help="Guidance scale."),
    interval: Optional[str] = typer.Option(None, help="Guidance interval LO,HI (strict)."),
    timeshift: Optional[float] = typer.Option(None),
    last_step: Optional[float] = typer.Option(None),
    recompute: Optional[str] = typer.Option(None, help="Explicit encoder steps, e.g. 0,3,6."),
    sharing_ratio: Optional[float] = typer.Option(None, help="Fraction of steps that reuse the encoder's state, in [0, 1)."),
    schedule: str = typer.Option("dp", help="dp or uniform, with --sharing-ratio."),
    save_latents: Optional[Path] = typer.Option(None, help="Write the final latents (.npy)."),
    save_npz: Optional[Path] = typer.Option(None, help="Write uint8 images in the ADM suite's .npz format (arr_0)."),
    out: Optional[Path] = typer.Option(None, help="PNG grid of the images."),
):
    """Sample with the Euler loop, CFG in its interval, and the encoder only at scheduled steps."""
    from ..pipeline import Pipeline

    if (build_dir is None) == (config is None):
        raise DDTError("give a build folder, or --config YAML --ckpt PATH (not both)")
    if seed is not None and noise is not None:
        raise DDTError("give either --seed or --noise, not both")
    label_list = ints(labels, "--labels")
    recompute_list = ints(recompute, "--recompute")
    lo, hi = parse_interval(interval)
    noise_arr = None
    if noise is not None:
        try:
            noise_arr = np.load(noise, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DDTError(f"cannot read noise {noise}: {str(e).splitlines()[0]}; save it with numpy.save") from None
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
    overrides = dict(num_steps=steps, guidance=cfg, interval_min=lo, interval_max=hi, timeshift=timeshift, last_step=last_step)
    _, _, settings = pipe.validate(label_list, seed=seed, noise=noise_arr, recompute=recompute_list,
                                   sharing_ratio=sharing_ratio, schedule=schedule, **overrides)
    if pipe.needs_calibration(settings.num_steps, recompute=recompute_list, sharing_ratio=sharing_ratio, method=schedule):
        console.print(f"no calibration for {settings.num_steps} steps yet: running it once (8 samples) and keeping it")
        bar, advance = progress_bar(settings.num_steps, "calibrating")
        with bar:
            pipe.calibrate_and_store(settings.num_steps, progress=advance)
    bar, advance = progress_bar(settings.num_steps, f"sampling ({pipe.backend.name})")
    with bar:
        result = pipe.generate(label_list, seed=seed, noise=noise_arr, recompute=recompute_list, sharing_ratio=sharing_ratio,
                               schedule=schedule, progress=advance, **overrides)
    console.print(f"{len(label_list)} samples, {settings.num_steps} steps, encoder ran {len(result.recompute)} times "
                  f"(sharing ratio {result.sharing_ratio:.2f})")
    from ..images import save_npy, save_npz as write_npz, save_png

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
    elif save_latents is None:
        console.print("nothing saved: pass --out FILE.png, --save-npz FILE or --save-latents FILE.npy")


@app.command()
def calibrate(
    build_dir: Path = typer.Argument(..., help="A build folder."),
    steps: int = typer.Option(..., help="Step count the DP schedules will use."),
    samples: int = typer.Option(8, help="Calibration batch (noise and labels from seed 0)."),
    backend: str = typer.Option("auto"),
):
    """Store the self-condition similarity matrix for a step count with the build."""
    from ..pipeline import Pipeline

    pipe = Pipeline.load(build_dir, backend)
    bar, advance = progress_bar(steps, "calibrating")
    with bar:
        path = pipe.calibrate_and_store(steps, samples, progress=advance)
    console.print(f"similarity for {steps} steps -> {path} (heatmap beside it)")


@app.command("schedule")
def schedule_cmd(
    similarity: Path = typer.Option(..., help="N x N similarity matrix (.npy)."),
    budget: int = typer.Option(..., help="Encoder runs K (1..N)."),
    method: str = typer.Option("dp", help="dp or uniform."),
    as_json: bool = typer.Option(False, "--json", help="Print {\"recompute\": [...]} as the last line."),
):
    """Recompute steps for a budget from a similarity matrix."""
    from .. import schedules

    try:
        sim = np.load(similarity, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DDTError(f"cannot read similarity {similarity}: {str(e).splitlines()[0]}") from None
    sim = schedules.check_similarity(sim)
    if method == "dp":
        steps = schedules.dp(sim, budget)
    elif method == "uniform":
        steps = schedules.evenly_spaced(sim.shape[0], budget)
    else:
        raise DDTError(f"unknown method {method!r}; choose dp or uniform")
    if as_json:
        print(json.dumps({"recompute": steps}))
    else:
        print(",".join(map(str, steps)))


@app.command()
def inspect(build_dir: Path = typer.Argument(..., help="A build folder.")):
    """What a build's manifest says, readable."""
    from ..describe import render
    from ..manifest import read

    Console().print(render(read(build_dir)))


from .sample import sample as _sample  # noqa: E402  (sampling at scale on Ray; Ray itself is imported only when it runs)

app.command("sample")(_sample)

from .check import check as _check  # noqa: E402  (precision report: fp16/bf16 graphs vs fp32)
from .check import engines as _engines  # noqa: E402  (TensorRT engines for an existing build)

app.command("check")(_check)
app.command("engines")(_engines)


def main() -> None:
    errors.run(app)


if __name__ == "__main__":
    main()
