"""An fp16 build of the shared official-format model, made once per session through the CLI with --backend auto."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def built_fp16_run(official, tmp_path_factory) -> tuple[Path, str]:
    """(fp16 build folder, the build command's output). `auto` on this machine: graphs only, engines skipped."""
    from typer.testing import CliRunner

    from ddt_export.cli import app

    out = tmp_path_factory.mktemp("builds16") / "tiny-fp16"
    result = CliRunner().invoke(app, ["build", "--config", str(official.config), "--ckpt", str(official.ckpt),
                                      "--precision", "fp16", "--backend", "auto", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.fixture(scope="session")
def built_fp16(built_fp16_run) -> Path:
    return built_fp16_run[0]
