"""The C++ runtime end to end: CMake build, `ddt-export build --libtorch`, `ddt-run` vs the official sampler.

The runtime is configured and built into runtime/build (or $DDT_RUNTIME_BUILD_DIR), the
folder CI builds first, so here the build is incremental. Parity: `ddt-run`'s final latents
vs the independent oracle's `official_sample` within 1e-4 relative L2, with and without
encoder sharing; vs the Python runtime on the same TorchScript-equivalent eager model within
1e-6 (in practice bit-identical: same noise, same grid, same ATen kernels, same float32 update).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import SAMPLER, rel_l2, seeded
from tests.reference.official_ddt import official_dp, official_sample

ROOT = Path(__file__).resolve().parents[2]
TOL = 1e-4  # vs the official implementation, relative L2
SAME_KERNELS = 1e-6  # vs the Python runtime on the same weights
NULL = 10  # the conftest model's null class (10 classes)


def run(cmd: list, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def runtime_build() -> Path:
    """runtime/ configured and built (Release, -j2); skipped where there is no cmake or C++ compiler."""
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed: the C++ runtime cannot be built here (apt-get install cmake g++)")
    if not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        pytest.skip("no C++ compiler: the C++ runtime cannot be built here (apt-get install g++)")
    build = Path(os.environ.get("DDT_RUNTIME_BUILD_DIR", ROOT / "runtime" / "build"))
    configure = run([cmake, "-S", ROOT / "runtime", "-B", build, f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
                     "-DCMAKE_BUILD_TYPE=Release"])
    assert configure.returncode == 0, configure.stdout[-3000:] + configure.stderr[-3000:]
    compiled = run([cmake, "--build", build, "-j2"], timeout=1800)
    assert compiled.returncode == 0, compiled.stdout[-5000:] + compiled.stderr[-3000:]
    return build


def test_cpp_unit_suite(runtime_build):
    """The C++ unit tests (CTest): time grid, seeded noise, DP vs brute force, .npy, manifest errors, the loop."""
    ctest = shutil.which("ctest")
    if ctest is None:
        pytest.skip("ctest is not installed (it comes with cmake)")
    result = run([ctest, "--test-dir", runtime_build, "--output-on-failure"])
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


@pytest.fixture(scope="session")
def ddt_run(runtime_build) -> Path:
    return runtime_build / "ddt-run"


@pytest.fixture(scope="session")
def lt_build(official, tmp_path_factory) -> Path:
    """The official-format checkpoint built with `ddt-export build --config --ckpt --libtorch` (the CLI path)."""
    out = tmp_path_factory.mktemp("libtorch") / "tiny"
    result = run(["ddt-export", "build", "--config", official.config, "--ckpt", official.ckpt, "--libtorch", "--out", out])
    assert result.returncode == 0, result.stderr
    return out


def ddt_run_ok(ddt_run: Path, *args) -> dict:
    # one thread: on a busy 2-core machine two OpenMP threads spin and run 10x slower
    result = run([ddt_run, *args, "--json", "--threads", "1"])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def reference(oracle, seed_or_noise, labels, recompute, **overrides) -> np.ndarray:
    s = {**SAMPLER, **overrides}
    noise = seed_or_noise if isinstance(seed_or_noise, np.ndarray) else seeded((len(labels), 4, 8, 8), seed_or_noise)
    return official_sample(oracle.ema, torch.from_numpy(noise), torch.tensor(labels), NULL, s["num_steps"], s["guidance"],
                           s["interval_min"], s["interval_max"], s["timeshift"], s["last_step"], recompute).numpy()


def one_line_error(result: subprocess.CompletedProcess, needle: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr


# ---------------------------------------------------------------- build and unit tests


def test_unit_tests_pass(runtime_build):
    result = run([runtime_build / "ddt_runtime_tests"])
    assert result.returncode == 0 and " 0 failed" in result.stdout, result.stdout + result.stderr


def test_build_records_libtorch_modules(lt_build):
    from ddt_export.manifest import read

    m = read(lt_build)  # every file, the .ts modules included, matches its sha256
    section = m.data["libtorch"]
    assert section["format"] == "torchscript" and section["precision"] == "fp32"
    for name in ("encoder", "decoder"):
        graph = m.data["graphs"][name]
        assert section[name]["inputs"] == [t["name"] for t in graph["inputs"]]
        assert section[name]["file"] in m.data["files"]
        assert section[name]["check"]["max_rel_error"] <= section[name]["check"]["tolerance"]


# ---------------------------------------------------------------- parity


def test_no_sharing_matches_official_and_python(official, lt_build, ddt_run, tmp_path):
    out = tmp_path / "lat.npy"
    summary = ddt_run_ok(ddt_run, lt_build, "--backend", "libtorch", "--labels", "1,7", "--seed", "3", "--save-latents", out)
    assert summary["recompute"] == list(range(12)) and summary["decode_calls"] == 12
    got = np.load(out)
    assert got.shape == (2, 4, 8, 8) and got.dtype == np.float32
    assert rel_l2(got, reference(official, 3, [1, 7], None)) < TOL

    from ddt_export.pipeline import Pipeline

    py = Pipeline.load(lt_build, "torch").generate([1, 7], seed=3).latents
    assert rel_l2(got, py) < SAME_KERNELS


def test_explicit_recompute_with_noise_and_overrides(official, lt_build, ddt_run, tmp_path):
    noise = seeded((3, 4, 8, 8), 11)
    np.save(tmp_path / "noise.npy", noise)
    out = tmp_path / "lat.npy"
    summary = ddt_run_ok(ddt_run, lt_build, "--labels", "0,5,9", "--noise", tmp_path / "noise.npy", "--steps", "10", "--cfg", "2",
                         "--interval", "0.2,0.8", "--recompute", "0,3,6", "--save-latents", out)
    assert summary["recompute"] == [0, 3, 6] and summary["encode_calls"] == 3 and summary["decode_calls"] == 10
    want = reference(official, noise, [0, 5, 9], [0, 3, 6], num_steps=10, guidance=2.0, interval_min=0.2, interval_max=0.8)
    assert rel_l2(np.load(out), want) < TOL


def test_uniform_sharing_matches_official(official, lt_build, ddt_run, tmp_path):
    out = tmp_path / "lat.npy"
    summary = ddt_run_ok(ddt_run, lt_build, "--labels", "2,4", "--seed", "5", "--sharing-ratio", "0.75", "--schedule", "uniform",
                         "--save-latents", out)
    assert summary["recompute"] == [0, 4, 8]  # i % 4 == 0 for 12 steps
    assert rel_l2(np.load(out), reference(official, 5, [2, 4], [0, 4, 8])) < TOL


def test_dp_sharing_after_calibrate_matches_official(official, lt_build, ddt_run, tmp_path):
    build = tmp_path / "calibrated"
    shutil.copytree(lt_build, build)  # calibrate writes into the folder
    calibrated = run(["ddt-export", "calibrate", build, "--steps", "12"])
    assert calibrated.returncode == 0, calibrated.stderr
    sim = np.load(build / "similarity-12.npy")
    out = tmp_path / "lat.npy"
    summary = ddt_run_ok(ddt_run, build, "--labels", "1,7", "--seed", "0", "--sharing-ratio", "0.75", "--save-latents", out)
    steps = official_dp(torch.from_numpy(sim), 3)  # K = 12 // 4
    assert summary["recompute"] == steps and abs(summary["sharing_ratio"] - 0.75) < 1e-9
    assert rel_l2(np.load(out), reference(official, 0, [1, 7], steps)) < TOL


# ---------------------------------------------------------------- errors: one line, exit 2


def test_missing_manifest(ddt_run, tmp_path):
    one_line_error(run([ddt_run, tmp_path / "nowhere", "--labels", "1"]), "has no manifest.json: run `ddt-export build`")


def test_bad_labels(lt_build, ddt_run):
    one_line_error(run([ddt_run, lt_build, "--labels", "1,x"]), "--labels must be comma-separated integers")
    one_line_error(run([ddt_run, lt_build, "--labels", "12"]), "label 12 is outside [0, 9] for this 10-class model")
    one_line_error(run([ddt_run, lt_build, "--labels", ""]), "give at least one label")


def test_bad_options(lt_build, ddt_run, tmp_path):
    one_line_error(run([ddt_run, lt_build, "--labels", "1", "--frobnicate"]), "no such option: --frobnicate")
    one_line_error(run([ddt_run, lt_build]), "missing option --labels")
    one_line_error(run([ddt_run, lt_build, "--labels", "1", "--seed", "1", "--noise", "x.npy"]), "either --seed or --noise")
    one_line_error(run([ddt_run, lt_build, "--labels", "1", "--recompute", "1,2"]), "must start at step 0")
    one_line_error(run([ddt_run, lt_build, "--labels", "1", "--sharing-ratio", "1.5"]), "sharing ratio must be in [0, 1)")
    one_line_error(run([ddt_run, lt_build, "--labels", "1", "--backend", "onnx"]), "unknown backend 'onnx'")
    one_line_error(run([ddt_run, lt_build, "--labels", "1", "--backend", "tensorrt"]), "compiled without TensorRT")
    np.save(tmp_path / "noise.npy", seeded((3, 4, 8, 8), 0))
    one_line_error(run([ddt_run, lt_build, "--labels", "1,2", "--noise", tmp_path / "noise.npy"]),
                   "noise has batch 3 but 2 labels were given")


def test_dp_without_calibration(lt_build, ddt_run):
    one_line_error(run([ddt_run, lt_build, "--labels", "1", "--sharing-ratio", "0.5"]),
                   f"run `ddt-export calibrate {lt_build} --steps 12`")


def test_build_without_libtorch_modules(lt_build, ddt_run, tmp_path):
    plain = tmp_path / "plain"
    shutil.copytree(lt_build, plain)
    manifest = json.loads((plain / "manifest.json").read_text())
    del manifest["libtorch"]
    (plain / "manifest.json").write_text(json.dumps(manifest))
    one_line_error(run([ddt_run, plain, "--labels", "1"]), "has no libtorch section; rebuild with `ddt-export build --libtorch`")
    (plain / "encoder.ts").write_bytes(b"truncated")
    one_line_error(run([ddt_run, plain, "--labels", "1"]), "encoder.ts does not match its size in the manifest")


def test_unwritable_output_fails_before_sampling(lt_build, ddt_run, tmp_path):
    one_line_error(run([ddt_run, lt_build, "--labels", "1", "--save-latents", tmp_path / "no" / "lat.npy"]), "does not exist")
