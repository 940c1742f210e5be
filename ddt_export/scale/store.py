"""The output folder of a sampling job, and the resume check that keeps it one configuration.

    OUT/job.json              the job's resume key, written before the first shard
    OUT/shards/shard-K.npz    images (b, H, W, 3) uint8, labels (b,) int64, key (the key's sha256)
    OUT/samples.npz           the merged ADM file (merge.py)
    OUT/sample-manifest.json  what was sampled, with which build, schedule and seeds (merge.py)

Shard files appear under their final name only when complete (temp file + os.replace), so
after a kill every shard file present is a finished shard, and a re-run skips exactly those.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import DDTError
from ..files import atomic_write, read_json, write_json_atomic
from .shards import Job, Shard

JOB_FILE = "job.json"
SHARDS_DIR = "shards"
SAMPLES_FILE = "samples.npz"
MANIFEST_FILE = "sample-manifest.json"


def describe_difference(old: dict, new: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    keys = sorted((set(old) | set(new)) - set(ignore))
    return [f"{k}: {_short(old.get(k))} there, {_short(new.get(k))} now" for k in keys if old.get(k) != new.get(k)]


def _short(v) -> str:
    text = json.dumps(v)
    return text if len(text) <= 40 else text[:37] + "..."


class Store:
    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.shards_dir = self.out / SHARDS_DIR

    @property
    def samples(self) -> Path:
        return self.out / SAMPLES_FILE

    @property
    def manifest(self) -> Path:
        return self.out / MANIFEST_FILE

    def shard_path(self, shard: Shard) -> Path:
        return self.shards_dir / f"shard-{shard.index:06d}.npz"

    # ------------------------------------------------------------------ the resume check

    def recorded_key(self) -> dict | None:
        path = self.out / JOB_FILE
        if not path.is_file():
            return None
        fix = "use another --out"
        data = read_json(path, "a ddt-export sampling record", fix)  # every parse failure is one line (200,000 '[' too)
        if not isinstance(data, dict) or not isinstance(data.get("key"), dict):
            raise DDTError(f"{path} is not a ddt-export sampling record; {fix}")
        return data["key"]

    def check(self, job: Job, ignore: tuple[str, ...] = ()) -> None:
        """Refuse an --out that holds samples of another configuration (fields in `ignore` not compared)."""
        old = self.check_ours()
        if old is None:
            return
        diff = describe_difference(old, job.key(), ignore)
        if diff:
            raise DDTError(
                f"{self.out} holds samples of another configuration ({'; '.join(diff[:3])}); "
                f"use another --out, or delete {self.out} to start over"
            )

    def check_ours(self) -> dict | None:
        """--out is new, empty, or a sampling job's folder (whose key this returns): a user's own files, a build or
        shards without a job record are refused, so `sample` never overwrites what it did not write."""
        if self.out.exists() and not self.out.is_dir():
            raise DDTError(f"--out {self.out} is a file; give a folder")
        old = self.recorded_key()
        if old is None:
            if self.shards_dir.is_dir() and any(self.shards_dir.iterdir()):
                raise DDTError(f"{self.out} has shards but no {JOB_FILE}; use another --out, or delete {self.out} to start over")
            if self.out.is_dir() and any(p.name != SHARDS_DIR for p in self.out.iterdir()):
                raise DDTError(f"--out {self.out} holds files that are not a ddt-export sampling job; nothing was changed. "
                               "Give an empty or new folder, or the folder of the same job to resume it")
        return old

    def begin(self, job: Job) -> None:
        """Record the job before any shard is written (after `check` passed)."""
        self.shards_dir.mkdir(parents=True, exist_ok=True)
        if self.recorded_key() is None:
            write_json_atomic(self.out / JOB_FILE, {"key": job.key(), "build": job.build, "build_name": job.build_name})

    def complete(self, job: Job) -> bool:
        """A finished earlier run of the same job: the merged file and its manifest are there."""
        if not (self.samples.is_file() and self.manifest.is_file()):
            return False
        try:
            m = read_json(self.manifest, "a ddt-export sampling manifest", "")
        except DDTError:  # damaged: the job is not complete, and merging again rewrites it
            return False
        return isinstance(m, dict) and m.get("key_sha256") == job.key_hash() and m.get("bytes") == self.samples.stat().st_size

    # ------------------------------------------------------------------ shards

    def finished(self, job: Job) -> set[int]:
        """Indices of the shards already on disk (each checked against this job's key)."""
        done, want = set(), job.key_hash()
        for shard in job.shards():
            path = self.shard_path(shard)
            if not path.is_file():
                continue
            try:
                with np.load(path, allow_pickle=False) as z:
                    key, labels = str(z["key"]), z["labels"]
            except (OSError, ValueError, KeyError):
                continue  # unreadable: computed again and replaced
            if key != want:
                raise DDTError(f"{path} was sampled with another configuration; use another --out, or delete {self.out} to start over")
            if labels.shape == (shard.size,):
                done.add(shard.index)
        return done

    def write_shard(self, job: Job, shard: Shard, images: np.ndarray, labels: np.ndarray) -> None:
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] != shard.size or images.shape[-1] != 3:
            raise DDTError(f"shard {shard.index}: worker returned images {images.shape} {images.dtype}, expected ({shard.size}, H, W, 3) uint8")
        key = np.array(job.key_hash())
        atomic_write(self.shard_path(shard), lambda f: np.savez(f, images=images, labels=labels.astype(np.int64), key=key))

    def read(self, shard: Shard, member: str) -> np.ndarray:
        """One member ("images" or "labels") of a shard file; npz members load independently."""
        with np.load(self.shard_path(shard), allow_pickle=False) as z:
            return z[member]

    def remove_shards(self, job: Job) -> None:
        for shard in job.shards():
            self.shard_path(shard).unlink(missing_ok=True)
        try:
            self.shards_dir.rmdir()
        except OSError:
            pass  # something else lives there; leave it
