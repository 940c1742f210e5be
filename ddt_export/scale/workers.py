"""The Ray actor: one backend session per worker, one shard per call.

A plain class here (importable and testable without Ray); dispatch.py wraps it with `ray.remote`
and the resources each worker asks for. Its constructor never raises: a worker that cannot
open the build says why through `ready()`, because Ray would otherwise hide the reason in an
ActorDiedError and a traceback printed from the worker's process.
"""

from __future__ import annotations

import socket

import numpy as np

from .. import __version__
from ..errors import DDTError
from ..backends import backend_class
from ..pipeline import Pipeline
from .shards import Job, Shard, fingerprint


class ShardWorker:
    def __init__(self, job: Job, threads: int | None, driver_version: str):
        self.job, self.host, self.error = job, socket.gethostname(), None
        try:
            if driver_version != __version__:
                raise DDTError(f"ddt-export {__version__} is installed here but the driver runs {driver_version}; install the same version on every node")
            cpu = "threads" in backend_class(job.backend).OPTIONS  # a CPU worker keeps to its CPU budget; TensorRT has none
            self.pipe = Pipeline.load(job.build, job.backend, **({"threads": threads} if cpu else {}))
            if fingerprint(self.pipe.manifest) != job.fingerprint:
                raise DDTError(f"the build at {job.build} is not the driver's build; copy the same build folder to that path on every node")
            self.pipe.check_images()
        except DDTError as e:
            self.error = f"worker on {self.host}: {e}"

    def ready(self) -> str | None:
        """None when this worker can sample, else the one-line reason it cannot."""
        return self.error

    def run(self, shard: Shard) -> tuple[int, np.ndarray, np.ndarray]:
        """(shard index, uint8 images (b, H, W, 3), int64 labels (b,)) for the samples [lo, hi)."""
        job = self.job
        labels = job.labels(shard.lo, shard.hi)
        noise = job.noise(shard.lo, shard.hi)
        result = self.pipe.generate(labels.tolist(), noise=noise, recompute=list(job.recompute), full_cfg=job.full_cfg, **job.sampler)
        return shard.index, self.pipe.images(result.latents), labels
