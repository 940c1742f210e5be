"""--vae: the decoder exported as a third graph, images written as PNG and ADM .npz."""

import numpy as np
import pytest
import torch
from PIL import Image

diffusers = pytest.importorskip("diffusers", reason="--vae needs diffusers (installed by the dev extra)")

from ddt_export.images import to_uint8  # noqa: E402
from ddt_export.vae import SCALE as VAE_SCALE  # noqa: E402
from ddt_export.pipeline import Pipeline  # noqa: E402


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    """A tiny AutoencoderKL with random weights, saved as a local diffusers folder (no hub)."""
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        norm_num_groups=4, down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, sample_size=16,
    ).eval()
    path = tmp_path_factory.mktemp("vae") / "tiny-vae"
    vae.save_pretrained(path)
    return path, vae


def test_build_with_vae_writes_images(cli, official, vae_dir, tmp_path):
    path, vae = vae_dir
    out = tmp_path / "b"
    r = cli("build", "--config", official.config, "--ckpt", official.ckpt, "--vae", path, "--out", out)
    assert r.code == 0, r.err
    r = cli("generate", out, "--labels", "1,2,3", "--seed", 0, "--out", tmp_path / "grid.png", "--save-npz", tmp_path / "s.npz",
            "--save-latents", tmp_path / "z.npy")
    assert r.code == 0, r.err
    images = np.load(tmp_path / "s.npz")["arr_0"]
    assert images.dtype == np.uint8 and images.shape == (3, 16, 16, 3)
    with torch.no_grad():
        want = to_uint8(vae.decode(torch.from_numpy(np.load(tmp_path / "z.npy")) / VAE_SCALE).sample.numpy())
    assert np.abs(images.astype(int) - want.astype(int)).max() <= 1  # rounding at .5 may flip one level
    assert Image.open(tmp_path / "grid.png").size[0] > 16
    assert Pipeline.load(out).manifest.has("vae_decoder")


def test_not_a_vae_folder(cli, official, tmp_path):
    r = cli("build", "--config", official.config, "--ckpt", official.ckpt, "--vae", tmp_path, "--out", tmp_path / "o")
    assert r.code == 2 and "not a diffusers AutoencoderKL folder" in r.err and not (tmp_path / "o").exists()
