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


def test_ci_runs_the_quick_starts_install_and_test_commands():
    """.ci/run installs and tests exactly as the quick start's first block tells a new user (comments aside)."""
    quick = README.read_text().split("## Quick start", 1)[1]
    block = quick.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("  #", 1)[0].strip() for line in block.splitlines()]
    install = [c for c in commands if c.startswith("pip install")]
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert install == ['pip install -e ".[dev]"'] and install[0] in ci
    assert "python -m pytest" in commands and "python -m pytest" in ci
    assert [c for c in ci if c.startswith(("pip ", "python "))] == install + ["python -m pytest"]
