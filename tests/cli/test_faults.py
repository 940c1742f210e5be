"""Faults a build folder must survive: concurrent first-use calibrations, a generate during a rebuild, a build killed
with SIGKILL or SIGTERM. Real processes through the installed `ddt-export` entry point; afterwards the folder is
always a valid build (every hash checks) and every process either succeeded or said why in one line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from ddt_export.manifest import read

TRIALS = 2  # each trial: fresh build copy, WORKERS processes at once
WORKERS = 4
CLI = [sys.executable, "-c", "from ddt_export.cli import main; main()"]


def start(*args, cwd=None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([*CLI, *map(str, args)], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(p: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    _, err = p.communicate(timeout=timeout)
    return p.returncode, err


def one_clear_line(code: int, err: str) -> None:
    """Success, or a refusal in one line; never an internal error or a traceback."""
    assert "Traceback" not in err and "internal error" not in err, err
    if code != 0:
        assert code == 2 and len(err.strip().splitlines()) == 1, (code, err)


@pytest.mark.parametrize("trial", range(TRIALS))
def test_concurrent_first_use_calibrations_leave_one_valid_entry(built, tmp_path, trial):
    build = tmp_path / "b"
    shutil.copytree(built, build)
    procs = [start("generate", build, "--labels", str(i), "--steps", 6, "--sharing-ratio", 0.5, "--schedule", "dp",
                   "--save-latents", tmp_path / f"x{i}.npy") for i in range(WORKERS)]
    results = [finish(p) for p in procs]
    for code, err in results:
        assert code == 0, err
    m = read(build)  # every file the manifest lists exists with its hash
    entries = [e for e in m.doc.calibration.values() if e.sampler.num_steps == 6]
    assert len(entries) == 1, m.doc.calibration
    listed = set(m.doc.files) | {"manifest.json"}
    assert {p.name for p in build.iterdir()} == listed  # no stray temp files or unlisted matrices
    assert not list(tmp_path.glob(".b.*partial"))


def test_generate_during_a_rebuild_of_the_same_folder(official, built, tmp_path):
    build = tmp_path / "b"
    shutil.copytree(built, build)
    rebuild = start("build", "--config", official.config, "--ckpt", official.ckpt, "--out", build)
    deadline = time.time() + 300
    while not list(tmp_path.glob(".b.*.partial")) and rebuild.poll() is None and time.time() < deadline:
        time.sleep(0.05)  # the rebuild is exporting: its swap comes in a few seconds
    gens = []
    for k in range(WORKERS):  # calibrating generates spread over the rebuild's export and swap (a bounded number)
        gens.append(start("generate", build, "--labels", "1", "--steps", 6, "--sharing-ratio", 0.5, "--cfg", 1.0 + k,
                          "--save-latents", tmp_path / f"x{k}.npy"))
        time.sleep(1.5)
    code, err = finish(rebuild)
    assert code == 0, err
    for p in gens:
        one_clear_line(*finish(p))
    assert len(gens) >= 2
    m = read(build)  # valid afterwards: every listed file with its hash, nothing unlisted
    assert {p.name for p in build.iterdir()} == set(m.doc.files) | {"manifest.json"}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_build_leaves_the_old_build_and_the_next_build_cleans_up(official, built, tmp_path, sig):
    out = tmp_path / "b"
    shutil.copytree(built, out)
    before = (out / "manifest.json").read_text()
    p = start("build", "--config", official.config, "--ckpt", official.ckpt, "--out", out)
    deadline = time.time() + 120
    while not list(tmp_path.glob(".b.*.partial")) and time.time() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.glob(".b.*.partial")), "the build never started staging"
    time.sleep(0.5)
    p.send_signal(sig)
    code, err = finish(p)
    assert (out / "manifest.json").read_text() == before  # the old build is untouched
    read(out)
    if sig == signal.SIGTERM:
        assert code == 130 and "interrupted" in err, (code, err)
        assert not list(tmp_path.glob(".b.*.partial"))  # cleaned up on the way out
    else:
        assert code == -signal.SIGKILL
        assert list(tmp_path.glob(".b.*.partial"))  # SIGKILL cannot clean up ...
    code, err = finish(start("build", "--config", official.config, "--ckpt", official.ckpt, "--out", out))
    assert code == 0, err
    assert not list(tmp_path.glob(".b.*.partial"))  # ... so the next build does
    assert json.loads((out / "manifest.json").read_text())["created"]
    read(out)


def test_a_live_builds_staging_folder_is_not_taken_for_a_leftover(official, built, tmp_path):
    """Two builds of one folder at once: the second must not delete the first one's staging folder."""
    out = tmp_path / "b"
    a = start("build", "--config", official.config, "--ckpt", official.ckpt, "--out", out)
    b = start("build", "--config", official.config, "--ckpt", official.ckpt, "--out", out)
    for p in (a, b):
        code, err = finish(p)
        assert code == 0, err
    read(out)
    assert not list(tmp_path.glob(".b.*"))  or all(q.name == ".b.lock" for q in tmp_path.glob(".b.*"))
