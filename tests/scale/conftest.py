"""A pixel-space build to sample images from: the bundled digits model when it is there,
else a tiny random model in the official layout (in_channels 1, `ddt_export.space: pixel`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reference.official_ddt import OfficialDDT, random_official_weights, write_official_checkpoint, write_official_yaml

TINY = dict(in_channels=1, patch_size=2, hidden_size=64, num_groups=4, num_blocks=5, num_encoder_blocks=3, num_classes=10)


def write_tiny_pixel_model(root: Path) -> tuple[Path, Path]:
    model = random_official_weights(OfficialDDT(**TINY), seed=0).eval()
    ckpt = write_official_checkpoint(root / "tiny.ckpt", model.state_dict(), None)
    config = write_official_yaml(root / "tiny.yaml", **TINY, latent_shape=[1, 16, 16], num_steps=20, guidance=2.0,
                                 interval_min=0.1, interval_max=1.0, timeshift=1.0, last_step=None)
    with open(config, "a") as f:
        f.write("ddt_export:\n  name: tiny-pixel\n  space: pixel\n")
    return Path(config), Path(ckpt)


@pytest.fixture(scope="session")
def pixel_build(tmp_path_factory) -> Path:
    from typer.testing import CliRunner

    from ddt_export.cli import app
    from ddt_export.sources import BUNDLED_CONFIG, BUNDLED_WEIGHTS

    root = tmp_path_factory.mktemp("pixel")
    if BUNDLED_CONFIG.is_file() and BUNDLED_WEIGHTS.is_file():
        args = ["build", "--out", str(root / "digits")]  # no model options: the bundled model
    else:
        config, ckpt = write_tiny_pixel_model(root)
        args = ["build", "--config", str(config), "--ckpt", str(ckpt), "--out", str(root / "digits")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return root / "digits"
