"""Shared fixtures: a small DDT in the official layout (YAML + Lightning checkpoint) and a build of it.

The oracle in tests/reference/official_ddt.py is an independent transcription of the
official implementation (complex RoPE, F.unfold/F.fold); parity tests compare against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import os
import sys
import tempfile

import numpy as np
import pytest
import torch

from tests.reference.official_ddt import OfficialDDT, random_official_weights, write_official_checkpoint, write_official_yaml

ARCH = dict(in_channels=4, patch_size=2, hidden_size=64, num_groups=4, num_blocks=5, num_encoder_blocks=3, num_classes=10)
LATENT = [4, 8, 8]
SAMPLER = dict(num_steps=12, guidance=3.0, interval_min=0.3, interval_max=0.9, timeshift=1.5, last_step=0.05)

torch.set_num_threads(2)

# The user cache (TensorRT timing caches, --backend auto's int8 probe) of this test session, not the user's own;
# CLI subprocesses inherit it. Tests that need their own set it with monkeypatch.
os.environ.setdefault("DDT_EXPORT_CACHE", tempfile.mkdtemp(prefix="ddt-test-cache-"))
# int8 builds keep their per-token sites whatever this CPU's timing of the tiny model says (quant/per_token.py's
# speed rule is tested on its own in tests/quant/test_per_token.py), so the tests see the scheme every time.
os.environ.setdefault("DDT_EXPORT_PER_TOKEN", "always")


@dataclass
class Official:
    config: Path
    ckpt: Path
    ema: OfficialDDT  # the oracle with the checkpoint's ema_denoiser weights
    raw: OfficialDDT  # ... and its denoiser weights


@pytest.fixture(scope="session")
def official(tmp_path_factory) -> Official:
    root = tmp_path_factory.mktemp("official")
    ema = random_official_weights(OfficialDDT(**ARCH), seed=0).eval()
    raw = random_official_weights(OfficialDDT(**ARCH), seed=1).eval()
    ckpt = write_official_checkpoint(root / "last.ckpt", ema.state_dict(), raw.state_dict())
    config = write_official_yaml(root / "config.yaml", **ARCH, latent_shape=LATENT, **SAMPLER)
    return Official(Path(config), Path(ckpt), ema, raw)


@pytest.fixture(scope="session")
def built(official, tmp_path_factory) -> Path:
    """An fp32 build of the official-format model, made once per session (the CLI path)."""
    return cli_build(tmp_path_factory.mktemp("builds") / "tiny", "--config", official.config, "--ckpt", official.ckpt)


@pytest.fixture(scope="session")
def built_int8(official, tmp_path_factory) -> Path:
    """`ddt-export build --precision int8` of the tiny model, once per session (tests/quant, tests/bench)."""
    return cli_build(tmp_path_factory.mktemp("builds8") / "tiny-int8", "--config", official.config, "--ckpt", official.ckpt,
                     "--precision", "int8")


@pytest.fixture(scope="session")
def built_fp8(official, tmp_path_factory) -> Path:
    """`ddt-export build --precision fp8` of the tiny model, once per session."""
    return cli_build(tmp_path_factory.mktemp("builds8") / "tiny-fp8", "--config", official.config, "--ckpt", official.ckpt,
                     "--precision", "fp8")


@pytest.fixture(scope="session")
def bundled_build(tmp_path_factory) -> Path:
    """`ddt-export build` with no model options: the bundled digits DDT, built once per session."""
    return cli_build(tmp_path_factory.mktemp("bundled") / "digits")


def cli_build(out: Path, *args) -> Path:
    """`ddt-export build ARGS --out OUT` through the real CLI; the build must succeed."""
    from typer.testing import CliRunner

    from ddt_export.cli import app

    result = CliRunner().invoke(app, ["build", *map(str, args), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def seeded(shape, seed: int) -> np.ndarray:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).numpy()


def rel_l2(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


class Result:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `ddt-export ARGS` in-process through the real entry point (one-line errors, exit codes)."""

    from ddt_export.cli import app, run as funnel

    def run(*args) -> Result:
        monkeypatch.setattr(sys, "argv", ["ddt-export", *map(str, args)])
        with pytest.raises(SystemExit) as e:
            funnel(app)
        out, err = capsys.readouterr()
        return Result(e.value.code, out, err)

    return run
