"""The machine failing `ddt-run` is one line and exit 74 (EX_IOERR, ddt_export.errors.IO_ERROR), as in Python: a full disk
or a file size limit while the latents are written names the file and the reason, and leaves no partial file (the write
goes through a temporary file and a rename). The tmpfs test needs root (mounting), as tests/cli/test_os_errors.py's; the
file size limit (RLIMIT_FSIZE) fails the same write for any user."""

from __future__ import annotations

import os
import resource
import subprocess

import numpy as np

from ddt_export.errors import IO_ERROR
from tests.cli.test_os_errors import small_tmpfs  # noqa: F401  (a fixture: a 1 MiB tmpfs, or a skip saying why)
from tests.runtime.conftest import run

ARGS = ["--labels", "1", "--steps", "2", "--threads", "1"]


def io_error_line(r: subprocess.CompletedProcess, *words: str) -> None:
    lines = r.stderr.splitlines()
    assert r.returncode == IO_ERROR, (r.returncode, r.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: ") and r.stdout == "", r.stderr[-2000:]
    assert "internal error" not in r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_a_full_disk_is_one_line_and_leaves_nothing(built, ddt_run, small_tmpfs):  # noqa: F811
    subprocess.run(["dd", "if=/dev/zero", f"of={small_tmpfs / 'filler'}", "bs=4096"], capture_output=True)  # ends at ENOSPC
    assert os.statvfs(small_tmpfs).f_bavail == 0
    out = small_tmpfs / "x.npy"
    io_error_line(run([ddt_run, built, *ARGS, "--save-latents", out]), str(out), "No space left on device", "nothing half-written")
    assert sorted(p.name for p in small_tmpfs.iterdir()) == ["filler"]


def limit_file_size(limit: int):
    """A child's file size limit (SIGXFSZ left at its default: ddt-run itself must ignore it, as Python does)."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_file_size_limit_is_one_line_and_leaves_nothing(built, ddt_run, tmp_path):
    out = tmp_path / "x.npy"
    r = subprocess.run([str(ddt_run), str(built), *ARGS, "--save-latents", str(out)], capture_output=True, text=True, timeout=300,
                       preexec_fn=limit_file_size(1000))  # the latents file is 1,152 bytes
    io_error_line(r, str(out), "File too large")
    assert list(tmp_path.iterdir()) == []


def test_an_old_file_survives_a_failed_write(built, ddt_run, tmp_path):
    """The write replaces the file only when the new one is whole: a failure keeps the old latents byte for byte."""
    out = tmp_path / "x.npy"
    np.save(out, np.arange(3, dtype=np.float32))
    before = out.read_bytes()
    r = subprocess.run([str(ddt_run), str(built), *ARGS, "--save-latents", str(out)], capture_output=True, text=True, timeout=300,
                       preexec_fn=limit_file_size(1000))
    io_error_line(r, str(out))
    assert out.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["x.npy"]
