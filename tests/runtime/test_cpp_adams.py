"""The C++ runtime's Adams multistep sampler (`ddt-run --sampler adams --order K`) against the Python one.

The C++ loop mirrors ddt_export.sampler.sample/advance and solvers.py op for op in float32, so on
the same graphs with the same engine and settings its latents equal Python's bit for bit. Compared:
- the per-step t, dt and coefficients (runtime/tests/probe.cpp `steps`) bit for bit with
  ddt_export.solvers.plan_steps, orders 1-4, 1 to 1,000 steps, explicit last steps, timeshifts;
- whole runs of orders 2, 3, 4 on a build's ONNX graphs, C++ OpenVINO f32 vs Python's OpenVINO
  backend in f32 (same engine, same graphs, one thread each): no sharing, uniform sharing, DP
  sharing on a build calibrated for Adams, an explicit recompute list, and a guidance interval
  that switches guidance off for part of the run (with and without the full CFG batch);
- the same on a `--libtorch` build: C++ LibTorch vs Python's eager torch backend;
- the official AdamLMSampler (tests/reference, float64 weights) within 1e-4, as the Euler tests;
- settings: with_overrides' default-order rule, bad sampler/order input (Python's messages, exit 2,
  one line, nothing written), and a calibration measured for Euler never serving Adams.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from ddt_export.errors import DDTError
from ddt_export.sampler import guidance_scales
from ddt_export.solvers import plan_steps
from tests.conftest import rel_l2, seeded
from tests.reference.official_ddt import official_adams_sample
from tests.runtime.conftest import run

ORDERS = [2, 3, 4]
# C++ vs Python latents. The C++ loop is the Python loop op for op in float32 (solvers.cpp's weights
# bit-identical to solvers.py's), and both drive the same engine library on the same graphs (the C++
# runtime links the openvino and torch wheels' own libraries; one inference thread each), so the
# latents come out bit-identical: that is asserted (measured: relative L2 0.0 for every order and
# case). The brief's bound for C++ vs Python, 1e-5 relative L2 (two engines on one graph, as
# test_cpp_runtime.py's SAME_GRAPHS), would hide an off-by-one ulp in the update; equality hides
# nothing. Should a future engine build make the two sides differ, SAME_GRAPHS is the ceiling to
# fall back to, and the message reports the measured distance.
SAME_GRAPHS = 1e-5
OFFICIAL = 1e-4  # vs the official AdamLMSampler in torch eager (another engine), float64 weights
NULL = 10
MEASURED: dict[str, float] = {}  # order/case -> relative L2 (printed at the end of the module with -s)


def ddt_run_ok(ddt_run: Path, *args) -> dict:
    result = run([ddt_run, *args, "--json", "--threads", "1"])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def f32(*args) -> tuple:
    return (*args, "--backend", "openvino", "--inference-precision", "f32")


_PIPES: dict = {}


def python_pipe(build: Path, backend: str):
    """Python's Pipeline on the same build: OpenVINO f32 on one thread (as ddt-run's --threads 1), or eager torch."""
    from ddt_export.pipeline import Pipeline

    key = (str(build), backend)
    if key not in _PIPES:
        options = {"precision": "fp32", "threads": 1} if backend == "openvino" else {}
        _PIPES[key] = Pipeline.load(build, backend, **options)
    return _PIPES[key]


def compare(name: str, got: np.ndarray, want: np.ndarray) -> None:
    """Bit-identical latents (see SAME_GRAPHS above); the distance is recorded for the report either way."""
    assert got.shape == want.shape and got.dtype == np.float32 and np.isfinite(got).all()
    d = rel_l2(got, want)
    MEASURED[name] = d
    assert np.array_equal(got, want), (f"{name}: C++ and Python latents differ, relative L2 {d:.3g} "
                                       f"({'within' if d < SAME_GRAPHS else 'beyond'} the two-engine bound {SAME_GRAPHS:g})")


@pytest.fixture(scope="module", autouse=True)
def report_measured():
    yield
    if MEASURED:
        print("\nC++ vs Python relative L2:", json.dumps({k: float(f"{v:.3g}") for k, v in sorted(MEASURED.items())}))


# ---------------------------------------------------------------- the per-step quantities, bit for bit

STEP_COUNTS = [1, 2, 3, 5, 10, 50, 250, 1000]
GRIDS = [(None, 1.0), (0.04, 1.0), (0.05, 1.5), (0.3, 3.0), (0.001, 0.25)]  # (last_step, timeshift)


def probe(runtime_build: Path, commands: list[str]) -> list[str]:
    done = subprocess.run([str(runtime_build / "ddt_runtime_probe")], input="\n".join(commands) + "\n", capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(commands), done.stdout[-2000:]
    return lines


def test_steps_and_coefficients_bit_identical_to_python(runtime_build):
    cases = [(n, last, shift, sampler, order) for n in STEP_COUNTS for last, shift in GRIDS
             for sampler, order in [("euler", 1), ("adams", 1), ("adams", 2), ("adams", 3), ("adams", 4)]]
    commands = [f"steps {n} {'none' if last is None else repr(last)} {shift!r} {sampler} {order}" for n, last, shift, sampler, order in cases]
    wrong = []
    for case, line in zip(cases, probe(runtime_build, commands)):
        assert not line.startswith("error"), (case, line)
        st = plan_steps(*case)
        n = case[0]
        assert len(st.coefficients) == n and all(len(c) == (1 if case[3] == "euler" else min(case[4], i + 1))
                                                 for i, c in enumerate(st.coefficients))
        want = np.concatenate([st.t, st.dt, np.array([v for c in st.coefficients for v in c], np.float32)]).view(np.uint32)
        got = np.array([int(h, 16) for h in line.split()], dtype=np.uint32)
        if got.size != want.size or not np.array_equal(got, want):
            where = int(np.argmax(got != want)) if got.size == want.size else "size"
            wrong.append(f"{case}: first difference at {where} (t: 0..{n - 1}, dt: {n}..{2 * n - 1}, then coefficients)")
    assert not wrong, "\n".join(wrong)


def test_guidance_follows_the_adams_running_sum_where_it_leaves_the_grid(built, ddt_run, tmp_path):
    """Adams' t is the float32 running sum, which leaves the grid on a few grids (12 steps, last step 0.04, timeshift
    1.5: steps 2 and 3 sit one ulp above). With the interval's low end on grid point 2, the strict test keeps Euler's step 2
    unguided and guides Adams' (t one ulp above): C++ decides as Python and lands on Python's latents."""
    from ddt_export.sampler import SamplerSettings

    adams, euler = plan_steps(12, 0.04, 1.5, "adams", 2), plan_steps(12, 0.04, 1.5, "euler")
    assert adams.t[2] > euler.t[2] and adams.t[3] > euler.t[3]
    lo = float(euler.t[2])  # float32-exact
    settings = SamplerSettings(num_steps=12, guidance=3.0, interval_min=lo, interval_max=0.9, timeshift=1.5, last_step=0.04,
                               sampler="adams", order=2)
    scales = guidance_scales(settings)
    assert scales[2] == 3.0 and guidance_scales(SamplerSettings(**{**settings.to_dict(), "sampler": "euler", "order": 1}))[2] == 1.0
    out = tmp_path / "lat.npy"
    summary = ddt_run_ok(ddt_run, *f32(built, "--labels", "1,7", "--seed", "4", "--steps", "12", "--last-step", "0.04",
                                       "--timeshift", "1.5", "--interval", f"{lo!r},0.9", "--sampler", "adams", "--save-latents", out))
    assert summary["decode_cond_only_calls"] == scales.count(1.0)
    py = python_pipe(built, "openvino").generate([1, 7], seed=4, num_steps=12, last_step=0.04, timeshift=1.5, interval_min=lo,
                                                 interval_max=0.9, sampler="adams")
    compare("openvino order 2 t off the grid", np.load(out), py.latents)


# ---------------------------------------------------------------- builds calibrated for Adams


def hinted_command(error: str) -> list[str]:
    """The `ddt-export calibrate ...` command a 'no calibration' error names."""
    found = re.search(r"run `(ddt-export calibrate [^`]+)` once", error)
    assert found, error
    return found.group(1).split()


@pytest.fixture(scope="module")
def adams_calibrated(calibrated, ddt_run, tmp_path_factory) -> Path:
    """A copy of the Euler-calibrated build, calibrated for Adams orders 2-4 with the very command each refusal names."""
    build = tmp_path_factory.mktemp("adams_calibrated") / "tiny"
    shutil.copytree(calibrated, build)
    for order in ORDERS:
        refused = run([ddt_run, build, "--labels", "1", "--sampler", "adams", "--order", order, "--sharing-ratio", "0.75"])
        assert refused.returncode == 2, refused.stderr
        cmd = hinted_command(refused.stderr)
        assert cmd[-4:] == ["--sampler", "adams", "--order", str(order)], cmd
        done = run(cmd)
        assert done.returncode == 0, done.stderr
    return build


def test_an_euler_calibration_is_not_used_for_adams(calibrated, ddt_run):
    """The build holds only the Euler matrix for these settings: ddt-run refuses DP under Adams (one line, the command
    that calibrates for it), as Python's lookup finds nothing; Euler DP still runs."""
    from ddt_export.manifest import read

    for args, order in ((["--sampler", "adams"], 2), (["--sampler", "adams", "--order", "3"], 3)):
        result = run([ddt_run, calibrated, "--labels", "1", *args, "--sharing-ratio", "0.75"])
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: no calibration"), result.stderr
        assert f", sampler adams order {order})" in lines[0]
        assert f"run `ddt-export calibrate {calibrated} --steps 12 --sampler adams --order {order}` once" in lines[0]
        m = read(calibrated)
        assert m.similarity(m.sampler.with_overrides(sampler="adams", order=order)) is None  # Python agrees: none stored
    summary = ddt_run_ok(ddt_run, *f32(calibrated, "--labels", "1", "--sharing-ratio", "0.75"))
    assert summary["sampler"] == "euler" and len(summary["recompute"]) == 3


# ---------------------------------------------------------------- whole runs: OpenVINO on the build's ONNX graphs


def check_guidance_switches(summary: dict, steps: int) -> None:
    assert 0 < summary["decode_cond_only_calls"] < steps, summary  # guidance on for part of the run only


@pytest.mark.parametrize("order", ORDERS)
def test_no_sharing_matches_python_and_official(order, official, built, ddt_run, tmp_path):
    out = tmp_path / "lat.npy"
    summary = ddt_run_ok(ddt_run, *f32(built, "--labels", "1,7", "--seed", "3", "--sampler", "adams", "--order", order,
                                       "--save-latents", out))
    assert (summary["sampler"], summary["order"]) == ("adams", order) and summary["recompute"] == list(range(12))
    check_guidance_switches(summary, 12)  # the build's interval 0.3,0.9: guidance off at the start and the end
    got = np.load(out)
    pipe = python_pipe(built, "openvino")
    py = pipe.generate([1, 7], seed=3, sampler="adams", order=order)
    assert py.settings.sampler == "adams" and py.settings.order == order
    compare(f"openvino order {order} no sharing", got, py.latents)
    d = pipe.defaults
    want = official_adams_sample(official.ema, torch.from_numpy(seeded((2, 4, 8, 8), 3)), torch.tensor([1, 7]), NULL, 12,
                                 d.guidance, d.interval_min, d.interval_max, d.timeshift, d.last_step, order=order,
                                 coeff_dtype=torch.float64).numpy()
    assert rel_l2(got, want) < OFFICIAL


@pytest.mark.parametrize("order", ORDERS)
def test_uniform_sharing_matches_python(order, built, ddt_run, tmp_path):
    out = tmp_path / "lat.npy"
    summary = ddt_run_ok(ddt_run, *f32(built, "--labels", "2,4", "--seed", "5", "--sampler", "adams", "--order", order,
                                       "--sharing-ratio", "0.5", "--schedule", "uniform", "--save-latents", out))
    assert summary["recompute"] == [0, 2, 4, 6, 8, 10] and summary["encode_calls"] == 6
    py = python_pipe(built, "openvino").generate([2, 4], seed=5, sampler="adams", order=order, sharing_ratio=0.5, schedule="uniform")
    assert py.recompute == summary["recompute"]
    compare(f"openvino order {order} uniform 0.5", np.load(out), py.latents)


@pytest.mark.parametrize("order", ORDERS)
def test_dp_sharing_on_an_adams_calibration_matches_python(order, adams_calibrated, ddt_run, tmp_path):
    from ddt_export.manifest import read

    m = read(adams_calibrated)
    settings = m.sampler.with_overrides(sampler="adams", order=order)
    sim = m.similarity(settings)
    assert sim is not None and not np.array_equal(sim, m.similarity(m.sampler))  # its own matrix, not Euler's
    out = tmp_path / "lat.npy"
    summary = ddt_run_ok(ddt_run, *f32(adams_calibrated, "--labels", "1,7", "--seed", "0", "--sampler", "adams", "--order", order,
                                       "--sharing-ratio", "0.75", "--save-latents", out))
    py = python_pipe(adams_calibrated, "openvino").generate([1, 7], seed=0, sampler="adams", order=order, sharing_ratio=0.75)
    assert summary["recompute"] == py.recompute and len(py.recompute) == 3 and abs(summary["sharing_ratio"] - 0.75) < 1e-9
    compare(f"openvino order {order} dp 0.75", np.load(out), py.latents)


@pytest.mark.parametrize("order", ORDERS)
def test_explicit_recompute_with_noise_and_overrides_matches_python(order, built, ddt_run, tmp_path):
    noise = seeded((3, 4, 8, 8), 11)
    np.save(tmp_path / "noise.npy", noise)
    out = tmp_path / "lat.npy"
    summary = ddt_run_ok(ddt_run, *f32(built, "--labels", "0,5,9", "--noise", tmp_path / "noise.npy", "--steps", "10", "--cfg", "2",
                                       "--timeshift", "1.0", "--last-step", "0.1", "--recompute", "0,3,7", "--sampler", "adams",
                                       "--order", order, "--save-latents", out))
    assert summary["recompute"] == [0, 3, 7] and summary["encode_calls"] == 3 and summary["decode_calls"] == 10
    py = python_pipe(built, "openvino").generate([0, 5, 9], noise=noise, num_steps=10, guidance=2.0, timeshift=1.0, last_step=0.1,
                                                 recompute=[0, 3, 7], sampler="adams", order=order)
    compare(f"openvino order {order} recompute 0,3,7", np.load(out), py.latents)


@pytest.mark.parametrize("full_cfg", [False, True], ids=["cond-half", "full-cfg"])
@pytest.mark.parametrize("order", ORDERS)
def test_guidance_interval_switching_off_matches_python(order, full_cfg, built, ddt_run, tmp_path):
    """Guidance only inside 0.45 < t < 0.8 (t the Adams running sum), a state computed where guidance is off reused where
    it is on: the conditional-half path and the official full batch."""
    from ddt_export.sampler import SamplerSettings

    settings = SamplerSettings(num_steps=12, guidance=4.0, interval_min=0.45, interval_max=0.8, timeshift=1.5, last_step=0.05,
                               sampler="adams", order=order)
    scales = guidance_scales(settings)
    assert scales == [1.0] * 7 + [4.0] * 3 + [1.0] * 2  # on at steps 7-9 only; step 4's state (unguided) serves 7 and 8
    out = tmp_path / "lat.npy"
    extra = ("--full-cfg",) if full_cfg else ()
    summary = ddt_run_ok(ddt_run, *f32(built, "--labels", "3,8", "--seed", "9", "--cfg", "4", "--interval", "0.45,0.8",
                                       "--recompute", "0,4,9", "--sampler", "adams", "--order", order, "--save-latents", out, *extra))
    if full_cfg:
        assert summary["decode_cond_only_calls"] == 0 and summary["encode_cond_only_calls"] == 0
    else:
        assert summary["decode_cond_only_calls"] == scales.count(1.0)
    py = python_pipe(built, "openvino").generate([3, 8], seed=9, guidance=4.0, interval_min=0.45, interval_max=0.8,
                                                 recompute=[0, 4, 9], sampler="adams", order=order, full_cfg=full_cfg)
    compare(f"openvino order {order} interval 0.45,0.8{' full-cfg' if full_cfg else ''}", np.load(out), py.latents)


# ---------------------------------------------------------------- whole runs: LibTorch modules


@pytest.mark.parametrize("order", ORDERS)
def test_libtorch_matches_python(order, lt_build, ddt_run, tmp_path):
    pipe = python_pipe(lt_build, "torch")
    for name, args, kw in (
        ("no sharing", (), {}),
        ("recompute 0,4,9 interval 0.45,0.8", ("--recompute", "0,4,9", "--cfg", "4", "--interval", "0.45,0.8"),
         dict(recompute=[0, 4, 9], guidance=4.0, interval_min=0.45, interval_max=0.8)),
    ):
        out = tmp_path / "lat.npy"
        summary = ddt_run_ok(ddt_run, lt_build, "--backend", "libtorch", "--labels", "1,7", "--seed", "3", "--sampler", "adams",
                             "--order", order, *args, "--save-latents", out)
        assert summary["backend"] == "libtorch" and summary["order"] == order
        py = pipe.generate([1, 7], seed=3, sampler="adams", order=order, **kw)
        compare(f"libtorch order {order} {name}", np.load(out), py.latents)


# ---------------------------------------------------------------- settings and bad input


def adams_default_build(built: Path, root: Path) -> Path:
    """A copy of the build whose manifest makes Adams of order 3 the default (as an official AdamLMSampler config does)."""
    b = root / "adams-default"
    shutil.copytree(built, b)
    manifest = json.loads((b / "manifest.json").read_text())
    manifest["sampler"].update(sampler="adams", order=3)
    manifest.pop("digest", None)  # an edited manifest: drop its self-digest, as a hand edit would
    (b / "manifest.json").write_text(json.dumps(manifest))
    return b


@pytest.mark.parametrize("default", ["euler", "adams3"])
def test_sampler_overrides_follow_with_overrides(default, built, ddt_run, tmp_path):
    """Choosing another sampler without an order takes that sampler's default order (adams 2, euler 1), as Python's
    SamplerSettings.with_overrides; the build's own sampler keeps its order. --json reports both."""
    from ddt_export.manifest import read

    build = built if default == "euler" else adams_default_build(built, tmp_path)
    defaults = read(build).sampler
    for args, kw in (((), {}), (("--sampler", "adams"), dict(sampler="adams")), (("--sampler", "euler"), dict(sampler="euler")),
                     (("--sampler", "adams", "--order", "4"), dict(sampler="adams", order=4)),
                     (("--sampler", "adams", "--order", "1"), dict(sampler="adams", order=1))):
        want = defaults.with_overrides(**kw)
        summary = ddt_run_ok(ddt_run, *f32(build, "--labels", "1", "--steps", "2", *args))
        assert (summary["sampler"], summary["order"]) == (want.sampler, want.order), (default, args)
    if default == "adams3":  # the build's default sampler runs without flags, as Python's
        out = tmp_path / "lat.npy"
        summary = ddt_run_ok(ddt_run, *f32(build, "--labels", "2,6", "--seed", "1", "--save-latents", out))
        assert (summary["sampler"], summary["order"]) == ("adams", 3)
        compare("openvino order 3 build default", np.load(out), python_pipe(build, "openvino").generate([2, 6], seed=1).latents)


def tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("args,overrides", [
    (["--order", "5"], dict(order=5)),
    (["--sampler", "adams", "--order", "5"], dict(sampler="adams", order=5)),
    (["--sampler", "adams", "--order", "0"], dict(sampler="adams", order=0)),
    (["--order", "2"], dict(order=2)),
    (["--sampler", "euler", "--order", "3"], dict(sampler="euler", order=3)),
    (["--sampler", "heun"], dict(sampler="heun")),
    (["--sampler", "Adams", "--order", "2"], dict(sampler="Adams", order=2)),
], ids=["order-5", "adams-order-5", "adams-order-0", "order-2-without-adams", "euler-order-3", "heun", "Adams"])
def test_bad_sampler_input_is_pythons_one_line_error(args, overrides, built, ddt_run, tmp_path):
    from ddt_export.manifest import read

    with pytest.raises(DDTError) as python_error:
        read(built).sampler.with_overrides(**overrides)
    before = tree_digest(built)
    out = tmp_path / "lat.npy"
    result = run([ddt_run, built, "--labels", "1", *args, "--save-latents", out, "--json"])
    assert result.returncode == 2 and result.stdout == "", (result.returncode, result.stderr)
    assert result.stderr.splitlines() == [f"error: {python_error.value}"]
    assert not out.exists() and list(tmp_path.iterdir()) == [] and tree_digest(built) == before
