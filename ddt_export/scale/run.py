"""The driver of `ddt-export sample`: validate, calibrate, run shards on Ray workers, merge.

    summary = sample_many(Request("engines/digits", num_samples=50_000, per_class=5_000, sharing_ratio=0.75))

Order matters: every check on the user's input (build, classes, ratio, counts, --address,
--out) happens before anything is computed; a DP schedule is calibrated once here, in the
driver, and handed to the workers as an explicit list of recompute steps, so workers only
read the build. Finished shards are on disk the moment they are reported, so an interrupted
run loses at most the shards in flight.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from .. import __version__, schedules
from ..backends import resolve_name
from ..errors import DDTError
from ..files import check_output_dir, sha256
from ..manifest import Manifest, read
from ..pipeline import Pipeline, check_images, check_labels
from ..sampler import MAX_BATCH, SamplerSettings
from . import cluster, watchdog
from .merge import merge
from .shards import Job, Shard, fingerprint
from .store import Store

IN_FLIGHT = 2  # shards queued per worker, so a worker never waits while the driver saves its last one
READY_TIMEOUT = 900.0  # seconds for the workers to open the build (an XL build is verified by sha256)


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


class RateColumn(ProgressColumn):
    """Samples per second and ETA over this run so far (shards finish in bursts, so rich's
    sliding-window speed would jump)."""

    def render(self, task) -> Text:
        rate = task.fields.get("rate")
        if not rate:
            return Text("-- samples/s, ETA --")
        eta = int((task.total - task.completed) / rate)
        return Text(f"{rate:.1f} samples/s, ETA {eta // 3600}:{eta // 60 % 60:02d}:{eta % 60:02d}")


# ---------------------------------------------------------------------- what the user asked for


@dataclass(frozen=True)
class Request:
    """A `ddt-export sample` run as the user gave it (the CLI's options, the Python API's arguments)."""

    build: str | Path
    num_samples: int
    classes: str | Sequence[int] | None = None  # None or "all": every class
    per_class: int = 1
    seed: int = 0
    batch: int = 32
    sharing_ratio: float | None = None
    schedule: str = "dp"
    steps: int | None = None
    cfg: float | None = None
    backend: str = "auto"
    out: str | Path | None = None
    workers: int | None = None
    address: str | None = None  # None: $RAY_ADDRESS, else a local Ray
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None  # None: 1 for tensorrt, else 0
    keep_shards: bool = False
    full_cfg: bool = False  # the official full CFG batch at every step

    def check(self) -> None:
        """The checks that need no build."""
        if self.sharing_ratio is not None:
            schedules.Request(ratio=self.sharing_ratio, method=self.schedule)
        for name, lo in (("num_samples", 1), ("batch", 1), ("per_class", 1), ("seed", 0)):
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


def parse_classes(classes: str | Sequence[int] | None, manifest: Manifest) -> tuple[int, ...]:
    if classes is None or (isinstance(classes, str) and classes.strip() == "all"):
        return tuple(range(manifest.arch.num_classes))
    if isinstance(classes, str):
        try:
            classes = [int(v) for v in classes.split(",") if v.strip()]
        except ValueError:
            raise DDTError(f"--classes takes `all` or comma-separated class ids, e.g. 0,1,7 (got {classes!r})") from None
    if not classes:
        raise DDTError("--classes is empty; give `all` or class ids, e.g. 0,1,7")
    return check_labels(classes, manifest.arch, manifest.null_class)


def plan(req: Request) -> tuple[Job, Manifest]:
    """The job from the user's input, all checked with the checks `generate` uses; `recompute` is left empty when
    a DP schedule still needs its calibration (see `resolve_schedule`). Opens no backend: only calibration needs one."""
    req.check()
    manifest = read(req.build)
    backend = resolve_name(req.backend, manifest)
    if backend == "tensorrt":
        from ..tensorrt.env import require

        require("--backend tensorrt", ", or sample with --backend onnxruntime")
    engines = manifest.data.get("engines") if backend == "tensorrt" else None
    if engines and 2 * req.batch > engines["cfg_batch"]["max"]:  # the engines' optimisation profile caps the CFG batch
        most = engines["cfg_batch"]["max"] // 2
        raise DDTError(f"--batch {req.batch} is more than the TensorRT engines take ({most} samples per call); "
                       f"use --batch {most}, or rebuild the engines with --max-batch {req.batch}")
    classes = parse_classes(req.classes, manifest)
    request = schedules.Request(ratio=req.sharing_ratio, method=req.schedule)
    settings = manifest.sampler.with_overrides(num_steps=req.steps, guidance=req.cfg)
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
    return Path("samples") / f"{job.build_name}-n{job.num_samples}{ratio}-seed{job.seed}"


def sample_many(req: Request, *, console: Console | None = None, show_progress: bool = True,
                on_shard: Callable[[Shard], None] | None = None) -> Summary:
    """Sample `req.num_samples` images over Ray workers into OUT/samples.npz (see the module doc).

    Nothing is written until the workers are up: bad input, a missing GPU or a cluster too small
    for --workers leave no trace. `on_shard(shard)` is called after each shard is saved (the tests
    interrupt a run from it).
    """
    console = console or Console(stderr=True)
    address = req.address or os.environ.get("RAY_ADDRESS") or None  # as ray.init: `ray job submit` sets it
    req.check()
    if req.out is not None:
        check_output_dir(req.out, "--out")
    cluster.check_address(address)
    job, _ = plan(req)
    store = Store(check_output_dir(req.out if req.out is not None else default_out(job), "--out"))
    store.check(job, ignore=("recompute",))  # the steps may still depend on a calibration
    cluster.import_ray()
    job = resolve_schedule(job, console, show_progress)
    store.check(job)
    manifest_sha = sha256(Path(job.build) / "manifest.json")
    if store.complete(job):
        record = json.loads(store.manifest.read_text())
        return Summary(job.num_samples, len(job.shards()), len(job.shards()), 0, 0.0, 0.0, 0.0, store.samples, store.manifest, record, True)

    shards = job.shards()
    done = store.finished(job)
    todo = [s for s in shards if s.index not in done]
    gpus = req.gpus_per_worker if req.gpus_per_worker is not None else (1.0 if job.backend == "tensorrt" else 0.0)
    n_workers, sampling_seconds, startup_seconds = 0, 0.0, 0.0
    if todo:
        n_workers, startup_seconds, sampling_seconds = _run_shards(
            job, store, todo, sum(s.size for s in shards if s.index in done), address=address, workers=req.workers,
            cpus=req.cpus_per_worker, gpus=gpus, console=console, show=show_progress, on_shard=on_shard,
        )
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


def _run_shards(job: Job, store: Store, todo: list[Shard], already: int, *, address, workers, cpus, gpus, console, show, on_shard):
    """Start the workers, keep IN_FLIGHT shards queued on each, save shards as they finish."""
    ray = cluster.import_ray()
    from .workers import ShardWorker

    t_start = time.perf_counter()
    local = address in (None, "local") and not ray.is_initialized()
    dog = watchdog.start() if local else None  # a SIGKILLed driver must not leave a local Ray running
    with console.status("starting Ray" if address in (None, "local") else f"joining the Ray cluster at {address}"):
        started = cluster.connect(address)
    actors: list = []
    inflight: dict = {}
    # SIGTERM (a batch scheduler's preemption, `kill`) ends the run like Ctrl-C: workers and a
    # local Ray stopped, finished shards kept. Only the main thread may set handlers.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if threading.current_thread() is threading.main_thread() else None
    try:
        n = cluster.worker_count(workers, cpus, gpus, len(todo))
        opts = {"num_cpus": cpus, "max_restarts": 2, "max_task_retries": 2}  # Ray restarts a worker lost with its node
        if gpus:
            opts["num_gpus"] = gpus
        Worker = ray.remote(ShardWorker)
        threads = max(1, int(cpus))
        with console.status(f"starting {n} worker{'s' * (n > 1)} ({cpus:g} CPU{f', {gpus:g} GPU' if gpus else ''} each)"):
            actors = [Worker.options(**opts).remote(job, threads, __version__) for _ in range(n)]
            try:
                problems = [p for p in ray.get([a.ready.remote() for a in actors], timeout=READY_TIMEOUT) if p]
            except ray.exceptions.GetTimeoutError:
                raise DDTError(f"the workers did not start within {READY_TIMEOUT:.0f} s; see `ray status` for missing resources") from None
        if problems:
            raise DDTError(problems[0])
        startup = time.perf_counter() - t_start
        store.begin(job)  # the first write to --out: every check has passed and the workers are up

        queue = deque(todo)

        def submit(actor) -> None:
            if queue:
                shard = queue.popleft()
                inflight[actor.run.remote(shard)] = (actor, shard)

        columns = (TextColumn(f"sampling ({n} worker{'s' * (n > 1)})"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), RateColumn())
        t0 = time.perf_counter()
        with Progress(*columns, console=console, disable=not show) as bar:
            task = bar.add_task("sampling", total=job.num_samples, completed=already, rate=None)
            computed = 0
            for _ in range(IN_FLIGHT):
                for actor in actors:
                    submit(actor)
            while inflight:
                ready, _ = ray.wait(list(inflight), num_returns=1)
                actor, shard = inflight.pop(ready[0])
                _, images, labels = _get(ray, ready[0])
                store.write_shard(job, shard, images, labels)
                computed += shard.size
                bar.update(task, advance=shard.size, rate=computed / (time.perf_counter() - t0))
                if on_shard is not None:
                    on_shard(shard)
                submit(actor)
        return n, startup, time.perf_counter() - t0
    except KeyboardInterrupt:
        console.print(f"interrupted: finished shards are saved in {store.out}; run the same command to resume")
        raise
    finally:
        for ref in inflight:  # cancelled tasks are not retried on the restarted actor
            ray.cancel(ref)
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()
        if dog is not None:
            dog.kill()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _get(ray, ref):
    """ray.get, with a worker's DDTError re-raised as itself (one line for the CLI)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, DDTError):
            raise DDTError(str(e.cause)) from None
        raise
    except ray.exceptions.RayActorError as e:
        raise DDTError(f"a worker was lost and could not be restarted ({str(e).splitlines()[0][:160]}); "
                       "finished shards are saved: run the same command to resume") from None
