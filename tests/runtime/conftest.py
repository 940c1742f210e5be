"""Session fixtures of the C++ runtime tests: runtime/ configured and built once, `ddt-run`, a `--libtorch` build
and a calibrated build."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "ddt_export" / "manifest.schema.json"  # the manifest's JSON Schema, validated from C++


def run(cmd: list, timeout: int = 600, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)


def prefix_path() -> str:
    """Where CMake finds OpenVINO (the openvino wheel's cmake folder) and LibTorch (the torch wheel's)."""
    paths = []
    try:
        import openvino

        paths.append(str(Path(openvino.__file__).parent / "cmake"))
    except ImportError:
        pass
    paths.append(torch.utils.cmake_prefix_path)
    return ";".join(paths)


@pytest.fixture(scope="session")
def runtime_build() -> Path:
    """runtime/ configured (OpenVINO + LibTorch backends) and built (Release, -j2); skipped where there is no cmake or C++ compiler."""
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed: the C++ runtime cannot be built here (apt-get install cmake g++)")
    if not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        pytest.skip("no C++ compiler: the C++ runtime cannot be built here (apt-get install g++)")
    build = Path(os.environ.get("DDT_RUNTIME_BUILD_DIR", ROOT / "runtime" / "build"))
    configure = run([cmake, "-S", ROOT / "runtime", "-B", build, f"-DCMAKE_PREFIX_PATH={prefix_path()}",
                     "-DCMAKE_BUILD_TYPE=Release"])
    assert configure.returncode == 0, configure.stdout[-3000:] + configure.stderr[-3000:]
    compiled = run([cmake, "--build", build, "-j2"], timeout=1800)
    assert compiled.returncode == 0, compiled.stdout[-5000:] + compiled.stderr[-3000:]
    return build


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


@pytest.fixture(scope="session")
def calibrated(built, tmp_path_factory) -> Path:
    """A copy of the session's build after `ddt-export calibrate --steps 12` (a DP calibration in its manifest)."""
    build = tmp_path_factory.mktemp("calibrated") / "tiny"
    shutil.copytree(built, build)  # calibrate writes into the folder
    calibrated = run(["ddt-export", "calibrate", build, "--steps", "12"])
    assert calibrated.returncode == 0, calibrated.stderr
    return build
