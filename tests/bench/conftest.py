"""Bench tests run on the session's tiny build (`built` in tests/conftest.py) and the real CLI entry point."""

from __future__ import annotations

import sys

import pytest


class Result:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def bench_cli(capsys, monkeypatch):
    """Run `ddt-bench ARGS` in-process through `main` (one-line errors, exit codes)."""
    from ddt_export.bench.cli import main as bench_main

    def run(*args) -> Result:
        monkeypatch.setattr(sys, "argv", ["ddt-bench", *map(str, args)])
        with pytest.raises(SystemExit) as e:
            bench_main()
        out, err = capsys.readouterr()
        return Result(e.value.code, out, err)

    return run
