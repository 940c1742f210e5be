"""The job and its plan: which samples exist, their labels and noise, and how they are cut into shards.

Every sample is a pure function of the job and its index i, never of which worker ran it
or how many workers there are:

- label i = classes[(i // per_class) % len(classes)]: classes cycled (per_class 1), or
  blocks of `per_class` consecutive samples per class;
- noise i = torch.randn((C, H, W), generator=torch.Generator("cpu").manual_seed(sample_seed(seed, i))),
  where sample_seed(seed, i) is the 64-bit state of numpy's SeedSequence(seed, spawn_key=(i,)),
  i.e. the i-th child of SeedSequence(seed), whose hashing keeps neighbouring streams independent.

Shards are fixed contiguous index ranges of `batch` samples, [k*batch, (k+1)*batch), the last
one shorter. A shard is one backend call of one fixed batch size, so the floating-point result
of every sample is the same whichever worker computes the shard, and the same on a re-run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import torch

from ..manifest import Manifest

# Bumped whenever the label or noise rule above changes, so old shards are never mixed in.
RULES_VERSION = 1
NOISE_RULE = (
    "noise i = torch.randn((C, H, W), generator=torch.Generator('cpu').manual_seed("
    "int(numpy.random.SeedSequence(seed, spawn_key=(i,)).generate_state(1, numpy.uint64)[0])))"
)
LABEL_RULE = "label i = classes[(i // per_class) % len(classes)]"


class Shard(NamedTuple):
    index: int
    lo: int  # first sample index
    hi: int  # one past the last

    @property
    def size(self) -> int:
        return self.hi - self.lo


@dataclass(frozen=True)
class Job:
    """What to sample. Every field but `build` and `build_name` decides the output bytes."""

    build: str  # absolute path of the build folder (the same path on every node)
    build_name: str
    fingerprint: str  # see `fingerprint()`: which model, whatever folder it sits in
    backend: str  # resolved backend name: torch, onnxruntime or tensorrt
    num_samples: int
    classes: tuple[int, ...]
    per_class: int
    seed: int
    batch: int
    sampler: dict  # SamplerSettings.to_dict(): steps, guidance, interval, timeshift, last step
    schedule: str  # dp or uniform (with a sharing ratio), or "all" (encoder at every step)
    sharing_ratio: float | None
    recompute: tuple[int, ...]  # the steps where the encoder runs, resolved in the driver
    latent_shape: tuple[int, int, int]
    full_cfg: bool = False  # the official full CFG batch everywhere (default: the conditional half where guidance is off)

    def key(self) -> dict:
        """The resume key: equal keys promise byte-identical shards."""
        d = asdict(self)
        del d["build"], d["build_name"]
        d["classes"], d["recompute"], d["latent_shape"] = list(self.classes), list(self.recompute), list(self.latent_shape)
        d["rules"] = RULES_VERSION
        return d

    def key_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.key(), sort_keys=True).encode()).hexdigest()

    def shards(self) -> list[Shard]:
        return [Shard(k, lo, min(lo + self.batch, self.num_samples)) for k, lo in enumerate(range(0, self.num_samples, self.batch))]

    def labels(self, lo: int, hi: int) -> np.ndarray:
        i = np.arange(lo, hi, dtype=np.int64)
        return np.asarray(self.classes, np.int64)[(i // self.per_class) % len(self.classes)]

    def noise(self, lo: int, hi: int) -> np.ndarray:
        """(hi - lo, C, H, W) float32, sample by sample from (seed, i)."""
        out = np.empty((hi - lo, *self.latent_shape), np.float32)
        for k, i in enumerate(range(lo, hi)):
            g = torch.Generator("cpu").manual_seed(sample_seed(self.seed, i))
            out[k] = torch.randn(self.latent_shape, generator=g, dtype=torch.float32).numpy()
        return out


def sample_seed(seed: int, i: int) -> int:
    """The torch seed of sample i: the i-th child of numpy's SeedSequence(seed), as 64 bits."""
    return int(np.random.SeedSequence(seed, spawn_key=(i,)).generate_state(1, np.uint64)[0])


def fingerprint(manifest: Manifest) -> str:
    """sha256 over what decides a build's samples: its files (graphs, weights, engines), the
    architecture, null class, space, sampler defaults and precision.

    Stored calibrations (which a run may add) and the folder's path are left out, so a copy
    of the build on another node, or the build after calibrating a new step count, matches.
    """
    d = manifest.doc
    calib = {f for entry in d.calibration.values() for f in (entry.file, entry.heatmap)}
    files = {name: entry.sha256 for name, entry in d.files.items() if name not in calib}
    model = d.model.model_dump(mode="json", exclude={"weights"})  # `weights` is where they were read from
    what = {"files": files, "model": model, "sampler": d.sampler.model_dump(mode="json"), "precision": d.precision}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()
