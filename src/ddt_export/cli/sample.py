"""`ddt-export sample`: many images over Ray workers, resumable, into one ADM `.npz`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

console = Console(stderr=True, soft_wrap=True)  # long paths stay on one line


def sample(
    build_dir: Path = typer.Argument(..., help="A build folder from `ddt-export build` (at the same path on every node)."),
    num_samples: int = typer.Option(..., "--num-samples", help="How many images, e.g. 50000 for FID."),
    classes: str = typer.Option("all", help="`all`, or class ids to sample, e.g. 0,1,7."),
    per_class: int = typer.Option(1, "--per-class", help="Consecutive samples per class before the next one (1: classes cycled)."),
    seed: int = typer.Option(0, help="Sample i's noise comes from (seed, i) alone, whatever the sharding."),
    batch: int = typer.Option(32, help="Samples per shard (one backend call); part of the result's identity."),
    sharing_ratio: Optional[float] = typer.Option(None, "--sharing-ratio", help="Fraction of steps that reuse the encoder's state, in [0, 1)."),
    schedule: str = typer.Option("dp", help="dp or uniform, with --sharing-ratio."),
    steps: Optional[int] = typer.Option(None, help="Sampling steps [default: the build's]."),
    cfg: Optional[float] = typer.Option(None, help="Guidance scale [default: the build's]."),
    backend: str = typer.Option("auto", help="auto, torch, onnxruntime or tensorrt (resolved here, used by every worker)."),
    out: Optional[Path] = typer.Option(None, help="Output folder [default: samples/<build>-n<N>[-<schedule><ratio>]-seed<S>]."),
    workers: Optional[int] = typer.Option(None, help="Number of workers [default: as many as the Ray cluster holds]."),
    address: Optional[str] = typer.Option(None, help="Join this Ray cluster (HOST:PORT of `ray start --head`) [default: $RAY_ADDRESS, else `local`: a Ray started here]."),
    cpus_per_worker: float = typer.Option(1.0, "--cpus-per-worker", help="CPUs (and threads) per worker."),
    gpus_per_worker: Optional[float] = typer.Option(None, "--gpus-per-worker", help="GPUs per worker [default: 1 for tensorrt, else 0]."),
    keep_shards: bool = typer.Option(False, "--keep-shards", help="Keep the shard files after merging."),
):
    """Sample N images over Ray workers: deterministic per sample, resumable, merged into samples.npz (arr_0)."""
    from ..scale.run import sample_many

    s = sample_many(
        build_dir, num_samples=num_samples, classes=classes, per_class=per_class, seed=seed, batch=batch,
        sharing_ratio=sharing_ratio, schedule=schedule, steps=steps, cfg=cfg, backend=backend, out=out,
        workers=workers, address=address, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
        keep_shards=keep_shards, console=console,
    )
    r = s.record
    if s.already_complete:
        console.print(f"already complete: {s.num_samples} samples in {s.samples_file} (sha256 {r['sha256'][:12]}); nothing to do")
        return
    sched = r["schedule"]
    how = "encoder at every step" if sched["method"] == "all" else f"{sched['method']} schedule, sharing ratio {sched['sharing_ratio']:g}"
    console.print(
        f"{s.num_samples} samples of {r['build']['name']} ({sched['num_steps']} steps, {how}, encoder runs {sched['encoder_calls']}), "
        f"{s.shards} shards of {r['batch']}" + (f", {s.resumed} resumed from disk" if s.resumed else "")
    )
    if s.sampled:
        console.print(f"sampled {s.sampled} in {s.sampling_seconds:.1f} s with {s.workers} worker{'s' * (s.workers > 1)}: "
                      f"{s.rate:.1f} samples/s (startup {s.startup_seconds:.1f} s, merge {s.merge_seconds:.1f} s)")
    shape = "x".join(map(str, [s.num_samples, *r["image_shape"]]))
    console.print(f"images (ADM .npz, arr_0 uint8 {shape}) -> {s.samples_file}")
    console.print(f"what was sampled with which build, schedule and seeds -> {s.manifest_file}")
