"""Stored calibrations: the DP's similarity matrix per sampler setting, its heatmap, and their manifest entry.

A matrix is measured on full runs under one set of sampler settings (steps, guidance,
interval, timeshift, last step, sampler and order: Adams trajectories are not Euler's) and is
valid only for runs under the same ones, so an entry
is keyed by all of them and found by matching them (`Manifest.calibration`); the C++ runtime
matches the entry's `sampler` object the same way. Storing is safe with any number of
processes calibrating, reading and rebuilding the folder at once: files get unique temp names
and land under a name no other setting uses, and the manifest is read-modified-written under
the folder's lock, re-read there (manifest.update).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from .files import atomic_write, save_npy
from .manifest import Manifest, record_file, update
from .manifest_schema import CalibrationEntry, ManifestDoc, Settings
from .sampler import SamplerSettings

CALIBRATION_SAMPLES = 8  # samples per calibration run (Pipeline.calibrate's batch); TensorRT engine profiles cover it


def key(settings: SamplerSettings) -> str:
    """A readable, unique name for the settings a matrix was measured under (the manifest's key)."""
    s = settings
    last = "default" if s.last_step is None else repr(float(s.last_step))
    solver = "" if s.sampler == "euler" else f" sampler={s.sampler} order={s.order}"  # Euler keys read as they always did
    return (f"steps={s.num_steps} guidance={float(s.guidance)!r} interval={float(s.interval_min)!r},{float(s.interval_max)!r} "
            f"timeshift={float(s.timeshift)!r} last_step={last}{solver}")


def file_stem(settings: SamplerSettings, samples: int = CALIBRATION_SAMPLES) -> str:
    """The files' name: settings, and the sample count where it is not the default (so a replacement has its own name)."""
    digest = hashlib.sha256(json.dumps(settings.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
    return f"similarity-{settings.num_steps}-{digest}" + ("" if samples == CALIBRATION_SAMPLES else f"-s{samples}")


def store(manifest: Manifest, settings: SamplerSettings, sim: np.ndarray, *, samples: int, seed: int,
          replace: bool = False) -> Manifest | None:
    """Write the matrix and a PNG heatmap, then record both in the manifest; returns the updated manifest.

    An entry of the same settings is kept (another process stored it first), unless `replace` and it was
    measured with another number of samples: then it and its files are replaced (`ddt-export calibrate --samples`).

    None when the folder was rebuilt meanwhile (the matrix belongs to the old model): nothing is
    recorded then, and the caller keeps its matrix in memory for its own run.
    """
    stem = file_stem(settings, samples)
    file, png = f"{stem}.npy", f"{stem}.png"
    picture = heatmap(sim, f"{manifest.name}: self-condition similarity, {settings.num_steps} steps")  # before the lock: slow-ish

    stale: set[str] = set()  # a replaced entry's files, removed once the new manifest is written

    def change(doc: ManifestDoc) -> None:  # under the folder's lock, on the manifest as it is now
        old = next((k for k, e in doc.calibration.items() if e.sampler.settings() == settings), None)
        if old is not None and not (replace and doc.calibration[old].samples != samples):
            return  # another process stored these settings first: keep theirs, the files it lists are its
        if old is not None:
            entry = doc.calibration.pop(old)
            stale.update(f for f in (entry.file, entry.heatmap) if f and f not in (file, png) and doc.files.pop(f, None))
        try:
            save_npy(manifest.path(file), sim.astype(np.float32))
            atomic_write(manifest.path(png), lambda f: f.write(picture))
        except BaseException:  # a full disk: no unlisted file is left in the build (update() does the same for the manifest)
            for name in {file, png} - set(doc.files):
                manifest.path(name).unlink(missing_ok=True)
            raise
        doc.calibration[key(settings)] = CalibrationEntry(file=file, heatmap=png, samples=samples, seed=seed, sampler=Settings.of(settings))
        record_file(manifest.root, doc, file)
        record_file(manifest.root, doc, png)

    updated = update(manifest, change)
    if stale and updated is not None:  # the replaced files, under the lock once no manifest lists them (re-read there)
        updated = update(updated, lambda doc: [manifest.path(f).unlink(missing_ok=True) for f in stale - set(doc.files)]) or updated
    return updated


def heatmap(sim: np.ndarray, title: str) -> bytes:
    """The matrix as a PNG people can read (step reused vs step computed)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.2), dpi=120)
    im = ax.imshow(sim, cmap="viridis", vmin=min(0.0, float(sim.min())), vmax=1.0)
    ax.set(title=title, xlabel="step j (state computed)", ylabel="step i (state reused)")
    ax.title.set_fontsize(8)
    fig.colorbar(im, ax=ax, label="cosine similarity")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
