"""Usage errors are one line and exit 2 on the newest typer (0.29+ vendors its own click as `typer._click`) and on the
oldest typer pyproject allows (0.12, which uses click itself), each run as a user would: a fresh interpreter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
USAGE = [
    (["generate", "x", "--steps", "abc"], "--steps must be a whole number of ASCII digits"),  # typer's parser= differs: click
    (["generate", "x", "--steps", "1_0"], "--steps must be a whole number of ASCII digits"),  # type (0.12) or pydantic (0.29)
    (["generate", "x", "--cfg", "1_0"], "--cfg must be a decimal number of ASCII digits"),
    (["generate", "x", "--labels", "1", "--steps"], "'--steps' requires an argument"),
    (["generate", "x"], "Missing option '--labels'"),
    (["build", "--res", "abc"], "--res must be a whole number of ASCII digits"),
    (["generate", "x", "--labels", "1", "--bogus"], "No such option: --bogus"),
    (["sample", "x", "--num-samples", "abc"], "--num-samples must be a whole number of ASCII digits"),
    (["nope"], "No such command 'nope'"),
]


def oldest_typer() -> str:
    spec = re.search(r'"typer>=([0-9.]+)"', (ROOT / "pyproject.toml").read_text())
    assert spec, "pyproject must give typer a lower bound"
    return spec.group(1)


@pytest.fixture(scope="module")
def old_typer(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("typer-old")
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                          f"typer=={oldest_typer()}", f"typer-slim=={oldest_typer()}", "click==8.1.8"], capture_output=True, text=True, timeout=300)
    if pip.returncode != 0:
        pytest.skip(f"cannot install typer=={oldest_typer()} from the package index here: {pip.stderr.strip().splitlines()[-1:]}")
    return target


def run(args, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    code = "import sys, typer; from ddt_export.cli import main; sys.argv = ['ddt-export', *sys.argv[1:]]; print(typer.__version__); main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize("which", ["newest", "oldest"])
def test_usage_errors_are_one_line_exit_2(which, request):
    path = request.getfixturevalue("old_typer") if which == "oldest" else None
    for args, words in USAGE:
        r = run(args, path)
        version = r.stdout.strip().splitlines()[0]
        if which == "oldest":
            assert version == oldest_typer()
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2, (version, args, r.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], (version, args, r.stderr)
