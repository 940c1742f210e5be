"""Stored calibrations: `similarity-<N>.npy` and its heatmap, recorded in the manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .images import atomic_write, save_npy
from .manifest import Manifest
from .sampler import SamplerSettings


def store(manifest: Manifest, num_steps: int, sim: np.ndarray, *, samples: int, seed: int, settings: SamplerSettings) -> Path:
    """Write the matrix (and a PNG heatmap for people), then record both in the manifest."""
    file, png = f"similarity-{num_steps}.npy", f"similarity-{num_steps}.png"
    save_npy(manifest.path(file), sim.astype(np.float32))
    heatmap(manifest.path(png), sim, f"{manifest.name}: self-condition similarity, {num_steps} steps")
    manifest.data.setdefault("calibration", {})[str(num_steps)] = {
        "file": file,
        "heatmap": png,
        "samples": samples,
        "seed": seed,
        "sampler": {**settings.to_dict(), "num_steps": num_steps},
    }
    manifest.add_file(file)
    manifest.add_file(png)
    manifest.save()
    return manifest.path(file)


def heatmap(path: Path, sim: np.ndarray, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.2), dpi=120)
    im = ax.imshow(sim, cmap="viridis", vmin=min(0.0, float(sim.min())), vmax=1.0)
    ax.set(title=title, xlabel="step j (state computed)", ylabel="step i (state reused)")
    ax.title.set_fontsize(8)
    fig.colorbar(im, ax=ax, label="cosine similarity")
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)
