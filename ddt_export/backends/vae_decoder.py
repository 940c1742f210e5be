"""The build's VAE decoder graph on onnxruntime: latents -> images in [-1, 1], its session opened once per pipeline."""

from __future__ import annotations

import numpy as np

from ..manifest import Manifest
from .onnxruntime_backend import default_providers, session

NAME = "vae_decoder"  # the graph's name in the manifest (vae.py exports it)
CHUNK = 4  # images per call: the decoder's activations at 256 px are ~1 GB per image


class VAEDecoder:
    def __init__(self, manifest: Manifest):
        self.spec = manifest.graph(NAME)
        self.scale = manifest.doc.graphs[NAME].scaling_factor or 0.18215  # the SD VAE's, for builds that did not record it
        self.session = session(manifest.path(self.spec.file), default_providers())

    def __call__(self, latents: np.ndarray) -> np.ndarray:
        """(B, 4, H, W) latents -> (B, 3, 8H, 8W) images in [-1, 1]."""
        z = np.asarray(latents, np.float32) / self.scale
        out, (x,) = self.spec.outputs[0].name, self.spec.inputs
        parts = [self.session.run([out], {x.name: z[i : i + CHUNK]})[0] for i in range(0, len(z), CHUNK)]
        return np.concatenate(parts) if parts else np.zeros((0, 3, *(d * 8 for d in z.shape[2:])), np.float32)
