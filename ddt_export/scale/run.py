"""The driver of `ddt-export sample`: validate, calibrate, run shards on Ray workers (dispatch.py), merge.

    summary = sample_many(SampleOptions("engines/digits", num_samples=50_000, per_class=5_000, sharing_ratio=0.75))

Order matters: every check on the user's input (build, classes, ratio, counts, --address,
--out) happens before anything is computed; a DP schedule is calibrated once here, in the
driver, and handed to the workers as an explicit list of recompute steps, so workers only
read the build. Finished shards are on disk the moment they are reported, so an interrupted
run loses at most the shards in flight.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .. import schedules
from ..backends import resolve_name
from ..errors import DDTError
from ..files import check_output_dir, read_json, sha256
from ..class_names import label_ids, resolve, split_labels
from ..labels import check_seed
from ..manifest import Manifest, read
from ..pipeline import Pipeline, check_images, check_labels
from ..sampler import MAX_BATCH, SamplerSettings
from . import cluster
from .dispatch import Display, Workers, run_shards
from .merge import merge
from .shards import Job, Shard, fingerprint
from .store import Store

@dataclass
class Summary:
    num_samples: int
    shards: int
    resumed: int  # shards found finished on disk
    workers: int
    sampling_seconds: float  # first shard sent to last shard saved (this run)
    startup_seconds: float  # Ray start/join and workers opening the build
    merge_seconds: float
    samples_file: Path
    manifest_file: Path
    record: dict = field(repr=False)
    already_complete: bool = False

    @property
    def sampled(self) -> int:
        """Samples computed in this run (not resumed)."""
        return self.record["last_run"]["samples_computed"]

    @property
    def rate(self) -> float:
        return self.sampled / self.sampling_seconds if self.sampling_seconds > 0 else float("nan")


# ---------------------------------------------------------------------- what the user asked for


@dataclass(frozen=True)
class SampleOptions:
    """A `ddt-export sample` run as the user gave it (the CLI's options, the Python API's arguments), validated once."""

    build: str | Path
    num_samples: int
    classes: str | Sequence[int | str] | None = None  # None or "all": every class; else ids or names
    per_class: int = 1
    seed: int = 0
    batch: int = 32
    sharing_ratio: float | None = None
    schedule: str = "dp"
    steps: int | None = None
    cfg: float | None = None
    sampler: str | None = None  # euler or adams [default: the build's]; part of every shard's key
    order: int | None = None
    backend: str = "auto"
    out: str | Path | None = None
    workers: int | None = None
    address: str | None = None  # None: $RAY_ADDRESS, else a local Ray
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None  # None: 1 for tensorrt, else 0
    keep_shards: bool = False
    full_cfg: bool = False  # the official full CFG batch at every step

    def validate(self) -> "SampleOptions":
        """The checks that need no build."""
        if self.sharing_ratio is not None:
            schedules.Request(ratio=self.sharing_ratio, method=self.schedule)
        check_seed(self.seed)
        for name, lo in (("num_samples", 1), ("batch", 1), ("per_class", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise DDTError(f"--{name.replace('_', '-')} must be a whole number >= {lo} (got {v!r})")
        if self.batch > MAX_BATCH:
            raise DDTError(f"--batch {self.batch} is more than {MAX_BATCH} samples per call; use --batch {MAX_BATCH} or fewer")
        if self.workers is not None and self.workers < 1:
            raise DDTError(f"--workers must be at least 1 (got {self.workers})")
        if not (self.cpus_per_worker > 0 and math.isfinite(self.cpus_per_worker)):
            raise DDTError(f"--cpus-per-worker must be a finite number > 0 (got {self.cpus_per_worker})")
        if self.gpus_per_worker is not None and not (self.gpus_per_worker >= 0 and math.isfinite(self.gpus_per_worker)):
            raise DDTError(f"--gpus-per-worker must be a finite number >= 0 (got {self.gpus_per_worker})")
        if self.workers is not None and self.address in (None, "local") and not os.environ.get("RAY_ADDRESS"):
            cores = os.cpu_count() or 1  # a local Ray holds this machine's cores: say so before anything starts
            if self.workers * self.cpus_per_worker > cores:
                raise DDTError(f"{self.workers} workers of {self.cpus_per_worker:g} CPU do not fit this machine's {cores} cores; "
                               f"use --workers {max(1, int(cores // self.cpus_per_worker))} or fewer, or join a cluster with --address")
        return self


def parse_classes(classes: str | Sequence[int | str] | None, manifest: Manifest) -> tuple[int, ...]:
    """`all`, or labels as ids or names (class_names.py's rules; names need a build that has them)."""
    if classes is None or (isinstance(classes, str) and classes.strip() == "all"):
        return tuple(range(manifest.arch.num_classes))
    names = manifest.class_names
    if isinstance(classes, str):
        ids_only = DDTError(f"--classes takes `all` or comma-separated class ids of ASCII digits, no empty entries, e.g. 0,1,7 "
                            f"(got {classes!r})" + ("" if names is not None else "; this build has no class names"))
        try:
            entries = split_labels(classes, "--classes", "0,1,7")
        except DDTError:
            if names is not None:
                raise
            raise ids_only from None
        if names is None and any(isinstance(e, str) for e in entries):
            raise ids_only
        classes = resolve(entries, names, "--classes")
    else:
        classes = label_ids(classes, names, "--classes")
    if not classes:
        raise DDTError("--classes is empty; give `all` or class ids, e.g. 0,1,7")
    return check_labels(classes, manifest.arch, manifest.null_class)


def plan(req: SampleOptions) -> tuple[Job, Manifest]:
    """The job from the user's input, all checked with the checks `generate` uses; `recompute` is left empty when
    a DP schedule still needs its calibration (see `resolve_schedule`). Opens no backend: only calibration needs one."""
    req.validate()
    manifest = read(req.build)
    backend = resolve_name(req.backend, manifest)
    if backend == "tensorrt":
        from ..backends.tensorrt.env import require

        require("--backend tensorrt", ", or sample with --backend onnxruntime")
    engines = manifest.doc.engines if backend == "tensorrt" else None
    if engines is not None and 2 * req.batch > engines.cfg_batch.max:  # the engines' optimisation profile caps the CFG batch
        most = engines.cfg_batch.max // 2
        raise DDTError(f"--batch {req.batch} is more than the TensorRT engines take ({most} samples per call); "
                       f"use --batch {most}, or rebuild the engines with --max-batch {req.batch}")
    classes = parse_classes(req.classes, manifest)
    request = schedules.Request(ratio=req.sharing_ratio, method=req.schedule)
    settings = manifest.sampler.with_overrides(num_steps=req.steps, guidance=req.cfg, sampler=req.sampler, order=req.order)
    check_images(manifest.space, manifest)
    recompute = ()
    if not request.needs_similarity or manifest.similarity(settings) is not None:
        recompute = tuple(request.resolve(settings.num_steps, manifest.similarity(settings) if request.needs_similarity else None))
    job = Job(
        build=str(Path(req.build).resolve()),
        build_name=manifest.name,
        fingerprint=fingerprint(manifest),
        backend=backend,
        num_samples=int(req.num_samples),
        classes=classes,
        per_class=int(req.per_class),
        seed=int(req.seed),
        batch=int(req.batch),
        sampler=settings.to_dict(),
        schedule=request.label,
        sharing_ratio=float(req.sharing_ratio) if request.sharing else None,
        recompute=recompute,
        latent_shape=tuple(manifest.arch.latent_shape),
        full_cfg=bool(req.full_cfg),
    )
    return job, manifest


def resolve_schedule(job: Job, console: Console, show: bool) -> Job:
    """Calibrate once here, in the driver, for a DP schedule without a stored calibration, then fix the steps."""
    if job.recompute:
        return job
    settings = SamplerSettings(**job.sampler)
    pipe = Pipeline.load(job.build, job.backend)
    p = pipe.plan(job.classes[:1], sharing_ratio=job.sharing_ratio, schedule=job.schedule, **job.sampler)
    console.print(f"no calibration for these settings ({settings.num_steps} steps) yet: running it once in the driver (8 samples) and keeping it with the build")
    with Progress(TextColumn("calibrating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console, transient=True, disable=not show) as bar:
        task = bar.add_task("calibrating", total=settings.num_steps)
        p = pipe.calibrated(p, progress=lambda i: bar.update(task, completed=i + 1))
    return replace(job, recompute=p.recompute)


# ---------------------------------------------------------------------- the run


def default_out(job: Job) -> Path:
    ratio = f"-{job.schedule}{job.sharing_ratio:g}" if job.sharing_ratio else ""
    solver = "" if job.sampler.get("sampler", "euler") == "euler" else f"-{job.sampler['sampler']}{job.sampler['order']}"
    return Path("samples") / f"{job.build_name}-n{job.num_samples}{solver}{ratio}-seed{job.seed}"


def sample_many(req: SampleOptions, *, console: Console | None = None, show_progress: bool = True,
                on_shard: Callable[[Shard], None] | None = None) -> Summary:
    """Sample `req.num_samples` images over Ray workers into OUT/samples.npz (see the module doc).

    Nothing is written until the workers are up: bad input, a missing GPU or a cluster too small
    for --workers leave no trace. `on_shard(shard)` is called after each shard is saved (the tests
    interrupt a run from it).
    """
    console = console or Console(stderr=True)
    address = req.address or os.environ.get("RAY_ADDRESS") or None  # as ray.init: `ray job submit` sets it
    req.validate()
    if req.out is not None:
        Store(check_output_dir(req.out, "--out")).check_ours()  # before the build is read: a user's folder is refused at once
    cluster.check_address(address)
    job, _ = plan(req)
    store = Store(check_output_dir(req.out if req.out is not None else default_out(job), "--out"))
    store.check(job, ignore=("recompute",))  # the steps may still depend on a calibration
    cluster.import_ray()
    job = resolve_schedule(job, console, show_progress)
    store.check(job)
    manifest_sha = sha256(Path(job.build) / "manifest.json")
    if store.complete(job):
        record = read_json(store.manifest, "a ddt-export sampling manifest", f"delete {store.manifest} and run again")
        return Summary(job.num_samples, len(job.shards()), len(job.shards()), 0, 0.0, 0.0, 0.0, store.samples, store.manifest, record, True)

    shards = job.shards()
    done = store.finished(job)
    todo = [s for s in shards if s.index not in done]
    gpus = req.gpus_per_worker if req.gpus_per_worker is not None else (1.0 if job.backend == "tensorrt" else 0.0)
    workers = Workers(address, req.workers, req.cpus_per_worker, gpus)
    n_workers, sampling_seconds, startup_seconds = 0, 0.0, 0.0
    if todo:
        already = sum(s.size for s in shards if s.index in done)
        n_workers, startup_seconds, sampling_seconds = run_shards(job, store, todo, already, workers, Display(console, show_progress, on_shard))
    computed = sum(s.size for s in todo)
    t0 = time.perf_counter()
    with console.status(f"merging {len(shards)} shards into {store.samples}"):
        run = {
            "workers": n_workers,
            "cpus_per_worker": req.cpus_per_worker,
            "gpus_per_worker": gpus,
            "address": address or "local",
            "samples_computed": computed,
            "shards_resumed": len(done),
            "sampling_seconds": round(sampling_seconds, 3),
            "samples_per_second": round(computed / sampling_seconds, 3) if sampling_seconds > 0 else None,
        }
        record = merge(job, store, manifest_sha256=manifest_sha, run=run)
    merge_seconds = time.perf_counter() - t0
    if not req.keep_shards:
        store.remove_shards(job)
    return Summary(job.num_samples, len(shards), len(done), n_workers, sampling_seconds, startup_seconds, merge_seconds,
                   store.samples, store.manifest, record)


def describe(s: Summary) -> list[str]:
    """What a finished run says to the user, a line each."""
    r = s.record
    if s.already_complete:
        return [f"already complete: {s.num_samples} samples in {s.samples_file} (sha256 {r['sha256'][:12]}); nothing to do"]
    sched = r["schedule"]
    how = "encoder at every step" if sched["method"] == "all" else f"{sched['method']} schedule, sharing ratio {sched['sharing_ratio']:g}"
    lines = [f"{s.num_samples} samples of {r['build']['name']} ({sched['num_steps']} steps, {how}, encoder runs {sched['encoder_calls']}), "
             f"{s.shards} shards of {r['batch']}" + (f", {s.resumed} resumed from disk" if s.resumed else "")]
    if s.sampled:
        lines.append(f"sampled {s.sampled} in {s.sampling_seconds:.1f} s with {s.workers} worker{'s' * (s.workers > 1)}: "
                     f"{s.rate:.1f} samples/s (startup {s.startup_seconds:.1f} s, merge {s.merge_seconds:.1f} s)")
    shape = "x".join(map(str, [s.num_samples, *r["image_shape"]]))
    lines.append(f"images (ADM .npz, arr_0 uint8 {shape}) -> {s.samples_file}")
    lines.append(f"what was sampled with which build, schedule and seeds -> {s.manifest_file}")
    return lines
