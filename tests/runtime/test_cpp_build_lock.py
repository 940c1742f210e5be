"""The C++ runtime takes the build folder's lock as the Python side does (ddt_export/files.py: `<parent>/.<name>.lock`,
flock shared by readers while they read and verify the manifest and open the graphs, exclusive by writers while they
swap a rebuilt folder into place): `ddt-run` opening a folder that a Python rebuild is swapping reads the old build or
the new one, never a half-swapped folder, and creates no lock file of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from ddt_export.files import lock_path, locked
from tests.runtime.conftest import run


def probe(runtime_build: Path, *commands: str) -> list[str]:
    done = subprocess.run([str(runtime_build / "ddt_runtime_probe")], input="\n".join(commands) + "\n", capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def flock_waiters(pid: int) -> bool:
    """Whether process `pid` is blocked waiting for a flock (a '->' line of /proc/locks)."""
    return any(line.split()[1] == "->" and line.split()[5] == str(pid) for line in Path("/proc/locks").read_text().splitlines()
               if len(line.split()) > 5)


def flock_holder(pid: int) -> bool:
    return any(line.split()[1] == "FLOCK" and line.split()[4] == str(pid) for line in Path("/proc/locks").read_text().splitlines()
               if len(line.split()) > 4)


def wait_for(condition, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_lock_path_is_pythons(runtime_build, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the probe inherits it: relative paths resolve alike
    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to("real")  # a build opened through a link locks its real folder
    cases = ["engines/tiny", "engines/tiny/", "./engines//tiny/.", str(tmp_path / "b"), "b", ".", "a/../b", "sub dir/x y",
             "link", "link/", "link/sub", "link/../b", "real/../link", "link/new/.."]
    assert probe(runtime_build, *[f"lockpath {c}" for c in cases]) == [str(lock_path(Path(c))) for c in cases]


@pytest.fixture
def folder(built, tmp_path) -> Path:
    out = tmp_path / "b"
    shutil.copytree(built, out)
    return out


def ddt_run_cmd(ddt_run: Path, build: Path, out: Path) -> list[str]:
    return [str(ddt_run), str(build), "--labels", "1", "--steps", "2", "--seed", "0", "--threads", "1",
            "--inference-precision", "f32", "--save-latents", str(out)]


def test_reader_creates_no_lock_file(ddt_run, folder, tmp_path):
    result = run(ddt_run_cmd(ddt_run, folder, tmp_path / "lat.npy"))
    assert result.returncode == 0, result.stderr
    assert not lock_path(folder).exists()


def test_open_waits_for_a_swap_in_progress(ddt_run, folder, tmp_path):
    """Under the writer's exclusive lock the folder is moved away and the new one moved in, with ddt-run started in
    between: without the lock it would find no manifest.json; with it, it waits and reads the new build."""
    new = tmp_path / ".b.new"
    shutil.copytree(folder, new)
    (new / "marker").write_text("new")  # not listed in the manifest: only tells the builds apart
    old = tmp_path / ".b.old"
    with locked(folder):
        os.replace(folder, old)  # the half-swapped moment: no folder at all
        proc = subprocess.Popen(ddt_run_cmd(ddt_run, folder, tmp_path / "lat.npy"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        wait_for(lambda: flock_waiters(proc.pid) or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()  # it is waiting on the lock, not failing on the missing folder
        os.replace(new, folder)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert (folder / "marker").exists() and np.load(tmp_path / "lat.npy").shape == (1, 4, 8, 8)


def test_writer_waits_for_an_open_in_progress(runtime_build, folder):
    """A Python writer's exclusive lock waits while the C++ side holds the shared lock."""
    with locked(folder):
        pass  # a writer has touched the folder: the lock file exists now
    proc = subprocess.Popen([str(runtime_build / "ddt_runtime_probe")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    proc.stdin.write(f"lockshared {folder} 2\n")
    proc.stdin.flush()
    wait_for(lambda: flock_holder(proc.pid))
    start = time.monotonic()
    with locked(folder):
        waited = time.monotonic() - start
    proc.stdin.close()
    assert proc.stdout.readline().strip() == "held"
    proc.wait(timeout=60)
    assert waited > 0.5


def test_open_concurrent_with_a_python_rebuild(official, ddt_run, tmp_path):
    """`ddt-export build --config ... --out SAME` rebuilding the folder while ddt-run opens it again and again: every
    ddt-run either succeeds or fails with one clear line (never a crash, never a half-swapped read)."""
    out = tmp_path / "same"
    args = ["ddt-export", "build", "--config", official.config, "--ckpt", official.ckpt, "--out", out]
    first = run(args)
    assert first.returncode == 0, first.stderr
    rebuild = subprocess.Popen([str(a) for a in args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    results = []
    while rebuild.poll() is None or not results:
        results.append(run(ddt_run_cmd(ddt_run, out, tmp_path / f"lat{len(results)}.npy")))
    _, err = rebuild.communicate(timeout=900)
    assert rebuild.returncode == 0, err
    assert results
    for r in results:
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 0 or (r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ")), r.stderr
    assert any(r.returncode == 0 for r in results)
    results.append(run(ddt_run_cmd(ddt_run, out, tmp_path / "after.npy")))
    assert results[-1].returncode == 0, results[-1].stderr
