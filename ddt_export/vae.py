"""Exporting the SD VAE decoder as a third graph, so a latent build can write images without PyTorch.

Input is a local diffusers AutoencoderKL folder (e.g. stabilityai/sd-vae-ft-ema, downloaded
by the user); nothing is fetched from a hub. The graph maps z = latents / 0.18215
(B, 4, H, W) to images in [-1, 1] (B, 3, 8H, 8W); backends/vae_decoder.py runs it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import torch

from .errors import DDTError
from .export import check_graph, export_graph
from .graphs import BATCH, GraphSpec, TensorSpec
from .manifest_schema import GraphCheck, GraphEntry, ManifestDoc
from .model import DDT

NAME = "vae_decoder"
SCALE = 0.18215  # SD VAE latent scaling factor (sd-vae-ft-ema)
TOLERANCE = 1e-3  # conv stacks in fp32 accumulate a little more rounding than the transformer


def vae_spec(latent_channels: int, latent_size: int, factor: int) -> GraphSpec:
    return GraphSpec(
        NAME,
        inputs=(TensorSpec("z", "float32", (BATCH, latent_channels, latent_size, latent_size)),),
        outputs=(TensorSpec("image", "float32", (BATCH, 3, latent_size * factor, latent_size * factor)),),
    )


class VAEDecoderGraph(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z).sample  # B 3 8H 8W in [-1, 1]


def load_vae(folder: Path):
    if not (Path(folder) / "config.json").is_file():
        raise DDTError(f"{folder} is not a diffusers AutoencoderKL folder (no config.json); download e.g. stabilityai/sd-vae-ft-ema to a local folder")
    try:
        from diffusers import AutoencoderKL
    except ImportError:
        raise DDTError("--vae needs diffusers: pip install diffusers") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return AutoencoderKL.from_pretrained(str(folder), local_files_only=True).eval()
        except (OSError, ValueError, EnvironmentError) as e:
            raise DDTError(f"cannot load the VAE from {folder}: {str(e).splitlines()[0]}") from None


def vae_extra(folder: Path, opset: int) -> Callable[[Path, ManifestDoc, DDT], None]:
    """A build extra that exports and checks the VAE decoder; the VAE is loaded before the build starts."""
    vae = load_vae(folder)

    def extra(tmp: Path, doc: ManifestDoc, model: DDT) -> None:
        arch = model.cfg
        if vae.config.latent_channels != arch.in_channels:
            raise DDTError(f"the VAE has {vae.config.latent_channels} latent channels but the model makes {arch.in_channels}")
        factor = 2 ** (len(vae.config.block_out_channels) - 1)
        spec, module = vae_spec(arch.in_channels, arch.latent_size, factor), VAEDecoderGraph(vae)
        g = torch.Generator().manual_seed(0)
        export_graph(module, spec, {"z": torch.randn((2, *arch.latent_shape), generator=g)}, tmp / spec.file, opset)
        check = check_graph(module, spec, tmp / spec.file, {"z": torch.randn((1, *arch.latent_shape), generator=g)}, TOLERANCE)
        if check.max_rel_error > TOLERANCE:
            raise DDTError(f"VAE decoder graph differs from PyTorch by {check.max_rel_error:.2e}; report this")
        doc.graphs[NAME] = GraphEntry(**spec.to_dict(), check=GraphCheck(**check.to_dict()), source=str(folder), scaling_factor=SCALE)

    return extra
