import sys

import pytest

from ddt_export.cli import errors
from ddt_export.cli.main import app


class Result:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `ddt-export ARGS` in-process through the real entry point (one-line errors, exit codes)."""

    def run(*args) -> Result:
        monkeypatch.setattr(sys, "argv", ["ddt-export", *map(str, args)])
        with pytest.raises(SystemExit) as e:
            errors.run(app)
        out, err = capsys.readouterr()
        return Result(e.value.code, out, err)

    return run
