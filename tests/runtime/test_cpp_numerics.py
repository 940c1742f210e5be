"""The C++ runtime's own numbers against torch's and hashlib's, bit for bit, without LibTorch.

`ddt_runtime_probe` (runtime/tests/probe.cpp) prints the time grid, the seeded noise and file
hashes as the runtime computes them; here they are compared with `torch.linspace`-based
`ddt_export.sampler.timesteps`, `torch.randn` on a seeded CPU generator and `hashlib.sha256`.
Both of torch's CPU kernel builds that change these numbers are covered: the one this machine
runs (AVX2/AVX512: fused multiply-adds, avx_mathfun in randn) and the DEFAULT one
(ATEN_CPU_CAPABILITY=default, read by torch and by the runtime alike).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# Step counts: every N up to 600 (torch's halfway split and all small grids), then a sweep to 10,000.
GRID_STEPS = list(range(1, 601)) + list(range(601, 10_001, 97)) + [10_000]
GRID_SETTINGS = [(None, 1.0), (0.04, 1.0), (0.05, 1.5), (0.3, 3.0), (0.001, 0.25)]
# Noise shapes: below 16 values (scalar Box-Muller in double), exactly 16, multiples of 16 and not
# (torch redraws the last 16), and latent batches as the sampler draws them.
NOISE_SHAPES = [(1,), (1, 2), (1, 3), (1, 15), (1, 16), (1, 17), (2, 4, 2, 2), (1, 31), (1, 32), (1, 33), (1, 47),
                (2, 4, 8, 8), (3, 4, 8, 8), (1, 1000), (1, 4, 32, 32), (4, 4, 32, 32), (2, 3, 16, 16)]
SEEDS = [0, 1, 2, 7, 42, 1234, 99991, 123456789, 2**31 - 1, 2**32 - 1, 2**32 + 5, 2**63 + 11, 2**64 - 1]

REFERENCE_SCRIPT = r"""
import sys, numpy as np, torch
sys.path.insert(0, sys.argv[1])
from ddt_export.solvers import timesteps
grid_steps, grid_settings, shapes, seeds = eval(sys.argv[2])
out = []
for n in grid_steps:
    for last, shift in grid_settings:
        out.append(timesteps(n, last, shift).view(np.uint32))
for seed in seeds:
    for shape in shapes:
        g = torch.Generator("cpu").manual_seed(seed)
        out.append(torch.randn(shape, generator=g, dtype=torch.float32).numpy().ravel().view(np.uint32))
np.save(sys.argv[3], np.concatenate(out))
"""


def probe_lines(probe: Path, commands: list[str], env: dict) -> list[str]:
    result = subprocess.run([str(probe)], input="\n".join(commands) + "\n", capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(commands), result.stdout[-2000:]
    return lines


def bits(line: str) -> np.ndarray:
    assert not line.startswith("error"), line
    return np.array([int(h, 16) for h in line.split()], dtype=np.uint32)


@pytest.mark.parametrize("capability", ["native", "default"])
def test_grid_and_noise_bit_identical_to_torch(runtime_build, tmp_path, capability):
    env = dict(os.environ)
    if capability == "default":
        env["ATEN_CPU_CAPABILITY"] = "default"  # torch's DEFAULT kernels: no FMA, libm in randn
    else:
        env.pop("ATEN_CPU_CAPABILITY", None)
    spec = (GRID_STEPS, GRID_SETTINGS, NOISE_SHAPES, SEEDS)
    ref_file = tmp_path / "reference.npy"
    root = Path(__file__).resolve().parents[2]
    made = subprocess.run([sys.executable, "-c", REFERENCE_SCRIPT, str(root), repr(spec), str(ref_file)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr[-3000:]
    want = np.load(ref_file)

    commands = [f"grid {n} {'none' if last is None else repr(last)} {shift!r}" for n in GRID_STEPS for last, shift in GRID_SETTINGS]
    commands += [f"randn {seed} {' '.join(map(str, shape))}" for seed in SEEDS for shape in NOISE_SHAPES]
    lines = probe_lines(runtime_build / "ddt_runtime_probe", ["kernels"] + commands, env)
    kernels, lines = lines[0], lines[1:]
    if capability == "default":
        assert kernels == "default"
    labels = [f"grid N={n} last={last} shift={shift}" for n in GRID_STEPS for last, shift in GRID_SETTINGS]
    labels += [f"randn seed={seed} shape={shape}" for seed in SEEDS for shape in NOISE_SHAPES]
    offset = 0
    for label, line in zip(labels, lines):
        got = bits(line)
        ref = want[offset:offset + got.size]
        offset += got.size
        assert got.size == ref.size and np.array_equal(got, ref), (
            f"{label} ({kernels} kernels): first difference at {int(np.argmax(got != ref))} of {got.size}")
    assert offset == want.size


def test_sha256_matches_hashlib(runtime_build, tmp_path):
    rng = np.random.default_rng(0)
    contents = {
        "empty": b"",
        "abc": b"abc",
        **{f"len{n}": bytes(rng.integers(0, 256, n, dtype=np.uint8)) for n in (1, 55, 56, 57, 63, 64, 65, 119, 128, 1000)},
        "one-megabyte": bytes(rng.integers(0, 256, 1 << 20, dtype=np.uint8)),
        "three-megabytes-and-17": bytes(rng.integers(0, 256, 3 * (1 << 20) + 17, dtype=np.uint8)),
        "name with spaces": b"\x00\xff" * 1000,
    }
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
    lines = probe_lines(runtime_build / "ddt_runtime_probe", [f"sha256 {tmp_path / name}" for name in contents], dict(os.environ))
    for (name, data), line in zip(contents.items(), lines):
        assert line == hashlib.sha256(data).hexdigest(), name
