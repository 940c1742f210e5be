"""Shards -> one ADM-format `.npz` and `sample-manifest.json`.

The merged file is byte for byte what `numpy.savez(path, arr_0=images, arr_1=labels)` writes
(the ADM suite reads `arr_0`, uint8 N x H x W x 3), but streamed shard by shard into the zip
member, so 50,000 images at 512 px (39 GB) never sit in memory at once.
"""

from __future__ import annotations

import datetime
import zipfile
from collections import Counter
from typing import BinaryIO, Callable, Iterable

import numpy as np

from .. import __version__
from ..files import atomic_write
from ..files import sha256, write_json_atomic
from .shards import LABEL_RULE, NOISE_RULE, Job
from .store import Store

FORMAT = 1


def write_npz_streamed(f: BinaryIO, members: list[tuple[str, np.dtype, tuple, Callable[[], Iterable[np.ndarray]]]]) -> None:
    """np.savez's layout (stored zip64 members, npy headers) with each array written chunk by chunk.

    members: (name, dtype, full shape, chunks) where chunks() yields C-ordered pieces along axis 0.
    """
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, dtype, shape, chunks in members:
            dtype = np.dtype(dtype)
            written = 0
            with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
                np.lib.format.write_array_header_1_0(member, header)
                for chunk in chunks():
                    chunk = np.ascontiguousarray(chunk, dtype=dtype)
                    member.write(chunk.data)
                    written += chunk.shape[0]
            if written != shape[0]:
                raise AssertionError(f"{name}: wrote {written} rows, header says {shape[0]}")


def merge(job: Job, store: Store, *, manifest_sha256: str, run: dict) -> dict:
    """Write samples.npz (arr_0 images, arr_1 labels) in sample order, then the sample manifest."""
    shards = job.shards()
    first = store.read(shards[0], "images")
    image_shape = tuple(first.shape[1:])  # (H, W, 3)
    N = job.num_samples

    def images():
        for shard in shards:
            yield store.read(shard, "images")

    def labels():
        for shard in shards:
            yield store.read(shard, "labels")

    members = [("arr_0", np.uint8, (N, *image_shape), images), ("arr_1", np.int64, (N,), labels)]
    atomic_write(store.samples, lambda f: write_npz_streamed(f, members))

    all_labels = job.labels(0, N)
    counts = Counter(int(y) for y in all_labels)
    record = {
        "format": FORMAT,
        "samples_file": store.samples.name,
        "sha256": sha256(store.samples),
        "bytes": store.samples.stat().st_size,
        "arrays": {"arr_0": f"uint8 images {[N, *image_shape]} (the ADM evaluation suite reads this)", "arr_1": f"int64 labels [{N}]"},
        "num_samples": N,
        "image_shape": list(image_shape),
        "build": {"name": job.build_name, "path": job.build, "manifest_sha256": manifest_sha256, "fingerprint": job.fingerprint},
        "backend": job.backend,
        "sampler": job.sampler,
        "schedule": {
            "method": job.schedule,
            "sharing_ratio": job.sharing_ratio,
            "recompute": list(job.recompute),
            "encoder_calls": len(job.recompute),
            "num_steps": job.sampler["num_steps"],
        },
        "seeds": {"seed": job.seed, "noise": NOISE_RULE, "labels": LABEL_RULE},
        "classes": list(job.classes),
        "per_class": job.per_class,
        "class_counts": {str(k): counts[k] for k in sorted(counts)},
        "batch": job.batch,
        "shards": len(shards),
        "ddt_export": __version__,
        "key_sha256": job.key_hash(),
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "last_run": run,
    }
    write_json_atomic(store.manifest, record)
    return record
