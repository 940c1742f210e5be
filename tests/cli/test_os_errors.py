"""Operating-system failures are one clear line, not an internal error (issue 26, item 5): a full disk during build or
generate, or an output's folder removed mid-run (ENOENT, as ddt-run), exits 74 (errors.IO_ERROR, EX_IOERR) naming the
path and leaves nothing half-written; over-long names and symlink loops given as outputs are refused up front with exit 2
(tests/cli/test_bad_input.py holds those rows too)."""

from __future__ import annotations

import os
import subprocess

import pytest

from ddt_export.errors import IO_ERROR


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs (a full disk on demand); mounting needs root, so elsewhere the test is skipped, saying why."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root; run as root (e.g. in the CI container) for the full-disk tests")
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}); the full-disk tests need it")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def io_error_line(r, *words, log_lines: bool = False):
    """Exit 74 and one error line (a build's stage lines come first off a terminal: `log_lines`)."""
    assert r.code == IO_ERROR, (r.code, r.out, r.err)
    lines = r.err.strip().splitlines()
    if log_lines:
        assert all(not x.startswith("error") for x in lines[:-1]), r.err
        lines = lines[-1:]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.err
    assert "Traceback" not in r.err and "internal error" not in r.err
    for w in words:
        assert w in lines[0], lines[0]


def test_a_build_that_fills_the_disk_says_so_and_leaves_nothing(cli, official, small_tmpfs):
    r = cli("build", "--config", official.config, "--ckpt", official.ckpt, "--out", small_tmpfs / "b")
    io_error_line(r, f"writing the build {small_tmpfs / 'b'}", "No space left on device", log_lines=True)
    assert sorted(p.name for p in small_tmpfs.iterdir()) == []  # no staging folder, no half build


def test_a_generate_onto_a_full_disk_says_so_and_leaves_nothing(cli, built, small_tmpfs):
    fd = os.open(small_tmpfs / "filler", os.O_WRONLY | os.O_CREAT)  # fill the disk to the last byte (unbuffered)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as e:
        assert e.errno == 28
    finally:
        os.close(fd)
    r = cli("generate", built, "--labels", "1", "--steps", 2, "--save-latents", small_tmpfs / "x.npy")
    io_error_line(r, str(small_tmpfs / "x.npy"), "No space left on device", log_lines=True)
    assert sorted(p.name for p in small_tmpfs.iterdir()) == ["filler"]


def test_an_os_failure_is_one_line_wherever_it_happens(cli, built, tmp_path, monkeypatch):
    """Any write: the funnel turns the machine's errors (not bugs) into exit 74 naming the file."""
    import errno

    def full(path, array):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr("ddt_export.cli.save_npy", full)
    r = cli("generate", built, "--labels", "1", "--steps", 2, "--save-latents", tmp_path / "x.npy")
    io_error_line(r, str(tmp_path / "x.npy"), "No space left on device", log_lines=True)
    assert list(tmp_path.iterdir()) == []


def test_a_bug_is_still_an_internal_error(cli, built, tmp_path, monkeypatch):
    """Only the machine's errors become exit 74: a FileNotFoundError from our own code is a bug and says so."""
    def bug(path, array):
        raise FileNotFoundError(2, "No such file or directory", "/nonexistent/internal")

    monkeypatch.setattr("ddt_export.cli.save_npy", bug)
    r = cli("generate", built, "--labels", "1", "--steps", 2, "--save-latents", tmp_path / "x.npy")
    assert r.code == 1 and "internal error" in r.err, (r.code, r.err)


@pytest.mark.parametrize("fail", ["heatmap", "manifest"])
def test_a_calibration_that_cannot_be_written_leaves_the_build_as_it_was(cli, built, tmp_path, monkeypatch, fail):
    """The disk fills while a calibration is stored (its heatmap, or the manifest after both files): exit 74, and the
    build is byte for byte what it was, so it still verifies and `build --out` still recognises it as a build."""
    import errno
    import hashlib
    import shutil

    import ddt_export.calibration as calibration
    import ddt_export.manifest as manifest
    from ddt_export.manifest import is_build, read

    build = tmp_path / "b"
    shutil.copytree(built, build)
    assert cli("calibrate", build, "--steps", 3, "--samples", 1).code == 0  # an entry a replacement would remove
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in build.iterdir()}

    def full(path, *args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(calibration if fail == "heatmap" else manifest, "atomic_write" if fail == "heatmap" else "write_json_atomic", full)
    r = cli("calibrate", build, "--steps", 3, "--samples", 2)
    io_error_line(r, str(build), "No space left on device", log_lines=True)
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in build.iterdir()} == before
    assert is_build(build) and read(build)


def removed_while_saving(monkeypatch, folder):
    """numpy.save writes its array, then `folder` is removed (someone's `rm -rf` mid-run), before the rename."""
    import shutil

    import numpy as np

    real = np.save

    def save(file, array, *args, **kwargs):
        real(file, array, *args, **kwargs)
        shutil.rmtree(folder)

    monkeypatch.setattr(np, "save", save)


def test_an_output_folder_removed_mid_write_is_an_os_failure(cli, built, tmp_path, monkeypatch):
    """ENOENT while writing a checked output is the machine changing under us: exit 74 naming the file, as ddt-run's
    write_atomic says; not an internal error, and nothing left behind."""
    out = tmp_path / "out"
    out.mkdir()
    removed_while_saving(monkeypatch, out)
    r = cli("generate", built, "--labels", "1", "--steps", 2, "--save-latents", out / "x.npy")
    io_error_line(r, f"{out / 'x.npy'}: No such file or directory (its folder was removed or renamed while this ran)", log_lines=True)
    assert list(tmp_path.iterdir()) == []


def test_a_build_removed_while_calibrating_is_an_os_failure(cli, built, tmp_path, monkeypatch):
    import shutil

    build = tmp_path / "b"
    shutil.copytree(built, build)
    removed_while_saving(monkeypatch, build)
    r = cli("calibrate", build, "--steps", 3, "--samples", 1)
    io_error_line(r, str(build), "No such file or directory", log_lines=True)
    assert [p.name for p in tmp_path.iterdir()] == [".b.lock"]  # the lock beside the folder stays, by design (files.py)


def test_a_staging_folder_removed_mid_build_is_an_os_failure(cli, official, tmp_path, monkeypatch):
    """Whatever the exporter makes of its folder vanishing (FileNotFoundError or its own error type), the build says the
    machine failed: exit 74, the build named, nothing left."""
    import shutil

    import ddt_export.build as build

    real = build.export_graph

    def export(*args, **kwargs):
        for staging in tmp_path.glob(".b.*"):
            shutil.rmtree(staging)
        return real(*args, **kwargs)

    monkeypatch.setattr(build, "export_graph", export)
    r = cli("build", "--config", official.config, "--ckpt", official.ckpt, "--out", tmp_path / "b")
    io_error_line(r, f"writing the build {tmp_path / 'b'}: No such file or directory", "was removed while building", log_lines=True)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_file_that_is_not_the_output_is_still_a_bug(cli, built, tmp_path, monkeypatch):
    """Only ENOENT about the path being written (its folder, its temp file) is the machine's: our code failing to find
    some other file while writing is a bug and says so."""
    import numpy as np

    def save(file, array, *args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", "/nonexistent/internal")

    monkeypatch.setattr(np, "save", save)
    r = cli("generate", built, "--labels", "1", "--steps", 2, "--save-latents", tmp_path / "x.npy")
    assert r.code == 1 and "internal error" in r.err, (r.code, r.err)
    assert list(tmp_path.iterdir()) == []
