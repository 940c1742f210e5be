"""Pictures from pixels: uint8 images, PNG grids, and the ADM suite's `.npz` (latents reach here through the VAE graph)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .files import atomic_write


def to_uint8(img: np.ndarray) -> np.ndarray:
    """(B, C, H, W) in [-1, 1] -> uint8 (B, H, W, 3), as the official fp2uint8."""
    img = np.clip((img + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    if img.shape[1] == 1:
        img = np.repeat(img, 3, axis=1)
    return img.transpose(0, 2, 3, 1)


def grid(images: np.ndarray, cols: int | None = None, scale: int = 1) -> np.ndarray:
    """(B, H, W, 3) -> one (rows*H, cols*W, 3) image with a 1-px gap, upscaled `scale` times."""
    B, H, W, _ = images.shape
    cols = cols or math.ceil(math.sqrt(B))
    rows = math.ceil(B / cols)
    out = np.full((rows * (H + 1) + 1, cols * (W + 1) + 1, 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        out[1 + r * (H + 1) : 1 + r * (H + 1) + H, 1 + c * (W + 1) : 1 + c * (W + 1) + W] = img
    return out.repeat(scale, 0).repeat(scale, 1) if scale > 1 else out


def save_png(path: str | Path, images: np.ndarray, cols: int | None = None) -> None:
    from PIL import Image

    H = images.shape[1]
    scale = max(1, 128 // H)  # small samples (16 px digits) are unreadable at 1:1
    atomic_write(Path(path), lambda tmp: Image.fromarray(grid(images, cols, scale)).save(tmp, format="PNG"))


def save_npz(path: str | Path, images: np.ndarray) -> None:
    """The ADM evaluation suite's sample file: `arr_0`, uint8, N x H x W x 3."""
    assert images.dtype == np.uint8 and images.ndim == 4 and images.shape[-1] == 3
    atomic_write(Path(path), lambda tmp: np.savez(tmp, arr_0=images))
