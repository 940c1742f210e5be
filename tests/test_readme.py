"""The README's own commands are safe to follow in order (issue 26, item 8): no command replaces a build an earlier
section made, and the install says how to get the CPU build of PyTorch inside a virtual environment."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
MODEL_OPTIONS = ("--preset", "--res", "--config")  # without one, `build` builds the bundled model into engines/digits


def build_commands() -> list[list[str]]:
    text = README.read_text()
    found = []
    for m in re.finditer(r"ddt-export build(?: [^`\n&|]*)?", text):
        found.append(shlex.split(m.group(0).replace("\\", " ")))
    return found


def test_the_readme_has_build_commands_to_check():
    assert len(build_commands()) >= 3


def test_no_readme_build_of_the_bundled_model_but_fp32_goes_to_the_default_folder():
    for args in build_commands():
        bundled = not any(o in args for o in MODEL_OPTIONS)
        other_precision = "--precision" in args and args[args.index("--precision") + 1] != "fp32"
        if bundled and other_precision:
            assert "--out" in args, f"`{' '.join(args)}` would replace the quick start's fp32 engines/digits"


def test_the_install_says_virtual_environment_and_cpu_pytorch():
    quick = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "python -m venv" in quick and "virtual environment" in quick
    assert "--index-url https://download.pytorch.org/whl/cpu" in quick
