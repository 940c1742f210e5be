"""The Ray side of a `ddt-export sample` run: join or start Ray, start the workers, keep shards queued, save them.

`run_shards` is the whole of it, in steps: connect (a local Ray gets a watchdog), trap SIGTERM,
size and start the workers (`WorkerPool.start`), then keep IN_FLIGHT shards queued on each and
save each shard as it finishes (`WorkerPool.sample`); however it ends, `WorkerPool.close` cancels
what is in flight and stops the workers, and the Ray it started.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from .. import __version__
from ..errors import DDTError
from . import cluster, watchdog
from .shards import Job, Shard
from .store import Store

IN_FLIGHT = 2  # shards queued per worker, so a worker never waits while the driver saves its last one
READY_TIMEOUT = 900.0  # seconds for the workers to open the build (an XL build is verified by sha256)


@dataclass(frozen=True)
class Workers:
    """Where the shards run and on what: the Ray address (None or "local": a Ray started here), how many workers
    (None: as many as the cluster holds) and each one's CPUs (also its threads) and GPUs."""

    address: str | None
    count: int | None
    cpus: float
    gpus: float

    @property
    def local(self) -> bool:
        return self.address in (None, "local")

    def actor_options(self) -> dict:
        opts = {"num_cpus": self.cpus, "max_restarts": 2, "max_task_retries": 2}  # Ray restarts a worker lost with its node
        if self.gpus:
            opts["num_gpus"] = self.gpus
        return opts


@dataclass(frozen=True)
class Display:
    """Where a run reports: the console, whether progress bars show, and a hook called after each shard is saved."""

    console: Console
    show: bool = True
    on_shard: Callable[[Shard], None] | None = None


class RateColumn(ProgressColumn):
    """Samples per second and ETA over this run so far (shards finish in bursts, so rich's
    sliding-window speed would jump)."""

    def render(self, task) -> Text:
        rate = task.fields.get("rate")
        if not rate:
            return Text("-- samples/s, ETA --")
        eta = int((task.total - task.completed) / rate)
        return Text(f"{rate:.1f} samples/s, ETA {eta // 3600}:{eta // 60 % 60:02d}:{eta % 60:02d}")


class WorkerPool:
    """One run's Ray resources: the connection (and its watchdog), the worker actors, the shards in flight."""

    def __init__(self, ray):
        self.ray = ray
        self.actors: list = []
        self.inflight: dict = {}  # object ref -> (actor, shard)
        self.started = False  # this run started (or joined) Ray, so it shuts it down
        self.dog = None
        self.previous = None  # the SIGTERM handler to restore

    def connect(self, workers: Workers, console: Console) -> None:
        """Join the cluster or start a local Ray; a local one gets a watchdog, as a SIGKILLed driver must not leave it running."""
        local = workers.local and not self.ray.is_initialized()
        self.dog = watchdog.start() if local else None
        with console.status("starting Ray" if workers.local else f"joining the Ray cluster at {workers.address}"):
            self.started = cluster.connect(workers.address)

    def trap_sigterm(self) -> None:
        """SIGTERM (a batch scheduler's preemption, `kill`) ends the run like Ctrl-C: workers and a local Ray stopped,
        finished shards kept. Only the main thread may set handlers."""
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, _raise_interrupt)

    def start(self, job: Job, workers: Workers, n: int, console: Console) -> None:
        """`n` workers, each with the build open and checked; else one line saying why not."""
        from .workers import ShardWorker

        Worker = self.ray.remote(ShardWorker)
        threads = max(1, int(workers.cpus))
        gpus = f", {workers.gpus:g} GPU" if workers.gpus else ""
        with console.status(f"starting {n} worker{'s' * (n > 1)} ({workers.cpus:g} CPU{gpus} each)"):
            self.actors = [Worker.options(**workers.actor_options()).remote(job, threads, __version__) for _ in range(n)]
            try:
                problems = [p for p in self.ray.get([a.ready.remote() for a in self.actors], timeout=READY_TIMEOUT) if p]
            except self.ray.exceptions.GetTimeoutError:
                raise DDTError(f"the workers did not start within {READY_TIMEOUT:.0f} s; see `ray status` for missing resources") from None
        if problems:
            raise DDTError(problems[0])

    def sample(self, job: Job, store: Store, todo: list[Shard], already: int, display: Display) -> float:
        """Keep IN_FLIGHT shards queued on every worker and save each as it finishes; the seconds it took."""
        queue = deque(todo)

        def submit(actor) -> None:
            if queue:
                shard = queue.popleft()
                self.inflight[actor.run.remote(shard)] = (actor, shard)

        n = len(self.actors)
        columns = (TextColumn(f"sampling ({n} worker{'s' * (n > 1)})"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), RateColumn())
        t0 = time.perf_counter()
        with Progress(*columns, console=display.console, disable=not display.show) as bar:
            task = bar.add_task("sampling", total=job.num_samples, completed=already, rate=None)
            computed = 0
            for _ in range(IN_FLIGHT):
                for actor in self.actors:
                    submit(actor)
            while self.inflight:
                ready, _ = self.ray.wait(list(self.inflight), num_returns=1)
                actor, shard = self.inflight.pop(ready[0])
                _, images, labels = _get(self.ray, ready[0])
                store.write_shard(job, shard, images, labels)
                computed += shard.size
                bar.update(task, advance=shard.size, rate=computed / (time.perf_counter() - t0))
                if display.on_shard is not None:
                    display.on_shard(shard)
                submit(actor)
        return time.perf_counter() - t0

    def close(self) -> None:
        """Cancel what is in flight, stop the workers, the Ray this run started and its watchdog; restore SIGTERM."""
        for ref in self.inflight:  # cancelled tasks are not retried on the restarted actor
            self.ray.cancel(ref)
        for actor in self.actors:
            self.ray.kill(actor)
        if self.started:
            self.ray.shutdown()
        if self.dog is not None:
            self.dog.kill()
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def run_shards(job: Job, store: Store, todo: list[Shard], already: int, workers: Workers, display: Display) -> tuple[int, float, float]:
    """Sample `todo` on Ray workers into `store` (`already` samples are on disk): (workers, startup seconds, sampling seconds)."""
    ray = cluster.import_ray()
    t_start = time.perf_counter()
    pool = WorkerPool(ray)
    pool.connect(workers, display.console)
    pool.trap_sigterm()
    try:
        n = cluster.worker_count(workers.count, workers.cpus, workers.gpus, len(todo))
        pool.start(job, workers, n, display.console)
        startup = time.perf_counter() - t_start
        store.begin(job)  # the first write to --out: every check has passed and the workers are up
        return n, startup, pool.sample(job, store, todo, already, display)
    except KeyboardInterrupt:
        display.console.print(f"interrupted: finished shards are saved in {store.out}; run the same command to resume")
        raise
    finally:
        pool.close()


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
