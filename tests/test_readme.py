"""The README's own commands are safe to follow in order (issue 26, item 8): no command replaces a build an earlier
section made, and the install says how to get the CPU build of PyTorch inside a virtual environment."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# the README's measurement write-ups moved into these pages (issue 23); their commands are held to the same rule
RESULT_PAGES = tuple(ROOT / "benchmarks" / name for name in ("quality.md", "precision.md", "latency.md"))
MODEL_OPTIONS = ("--preset", "--res", "--config")  # without one, `build` builds the bundled model into engines/digits


def build_commands(*pages: Path) -> list[list[str]]:
    found = []
    for page in pages or (README,):
        for m in re.finditer(r"ddt-export build(?: [^`\n&|]*)?", page.read_text()):
            found.append(shlex.split(m.group(0).replace("\\", " ")))
    return found


def test_the_readme_has_build_commands_to_check():
    assert len(build_commands()) >= 3


def test_no_readme_build_of_the_bundled_model_but_fp32_goes_to_the_default_folder():
    for args in build_commands(README, *RESULT_PAGES):
        bundled = not any(o in args for o in MODEL_OPTIONS)
        other_precision = "--precision" in args and args[args.index("--precision") + 1] != "fp32"
        if bundled and other_precision:
            assert "--out" in args, f"`{' '.join(args)}` would replace the quick start's fp32 engines/digits"


def test_the_install_says_virtual_environment_and_cpu_pytorch():
    quick = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "python -m venv" in quick and "virtual environment" in quick
    assert "--index-url https://download.pytorch.org/whl/cpu" in quick
