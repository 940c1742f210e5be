"""The C++ runtime end to end: CMake build, `ddt-run` on a plain build's ONNX graphs (OpenVINO)
and on `ddt-export build --libtorch` modules, against the official sampler and the Python runtime.

The runtime is configured against the openvino wheel's CMake config and LibTorch's (both in
this venv) and built into runtime/build (or $DDT_RUNTIME_BUILD_DIR), so here the build is
incremental. Parity: `ddt-run`'s final latents vs the independent oracle's `official_sample`
within 1e-4 relative L2, with and without encoder sharing; with OpenVINO in f32 vs the Python
runtime (onnxruntime on the same ONNX graphs) within 1e-5; with LibTorch vs the Python runtime
on the same eager model within 1e-6.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import torch

from tests.conftest import SAMPLER, rel_l2, seeded
from tests.runtime.conftest import SCHEMA, run
from tests.reference.official_ddt import official_dp, official_sample

TOL = 1e-4  # vs the official implementation, relative L2
SAME_GRAPHS = 1e-5  # vs the Python runtime on the same ONNX graphs (another engine: OpenVINO vs onnxruntime)
SAME_KERNELS = 1e-6  # vs the Python runtime on the same weights and ATen kernels (LibTorch)
NULL = 10  # the conftest model's null class (10 classes)


def test_cpp_unit_suite(runtime_build, built, built_int8, lt_build, calibrated):
    """The C++ unit tests (CTest's ddt_runtime_unit, run once, directly): time grid, seeded noise, DP vs brute force, .npy,
    sha256, manifest errors and calibration lookup, the loop; and the real manifests of this session's builds (fp32, int8,
    with LibTorch modules, calibrated) against ddt_export/manifest.schema.json, which must also cover what the reader requires."""
    assert SCHEMA.is_file(), f"{SCHEMA} is missing: the manifest's JSON Schema is generated from ddt_export/manifest_schema.py"
    builds = [arg for b in (built, built_int8, lt_build, calibrated) for arg in ("--manifest", b)]
    result = run([runtime_build / "ddt_runtime_tests", "--schema", SCHEMA, *builds])
    assert result.returncode == 0 and " 0 failed" in result.stdout, result.stdout[-5000:] + result.stderr[-2000:]
    assert "(skipped" not in result.stdout, result.stdout
    for name in ("schema_validator_keywords", "manifest_schema_matches_reader", "manifest_schema_accepts_real_builds",
                 "manifest_schema_refuses_broken_manifests"):
        assert f"PASS {name}" in result.stdout, result.stdout
    assert "(4 builds) PASS manifest_schema_accepts_real_builds" in result.stdout


def ddt_run_ok(ddt_run: Path, *args) -> dict:
    # one thread: on a busy 2-core machine two spinning threads run 10x slower
    result = run([ddt_run, *args, "--json", "--threads", "1"])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def f32(*args) -> tuple:
    """OpenVINO in f32 (bf16 is the default where the CPU has it): the precision parity is judged in."""
    return (*args, "--backend", "openvino", "--inference-precision", "f32")


def reference(oracle, seed_or_noise, labels, recompute, **overrides) -> np.ndarray:
    s = {**SAMPLER, **overrides}
    noise = seed_or_noise if isinstance(seed_or_noise, np.ndarray) else seeded((len(labels), 4, 8, 8), seed_or_noise)
    return official_sample(oracle.ema, torch.from_numpy(noise), torch.tensor(labels), NULL, s["num_steps"], s["guidance"],
                           s["interval_min"], s["interval_max"], s["timeshift"], s["last_step"], recompute).numpy()


def one_line_error(result: subprocess.CompletedProcess, needle: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr


# ---------------------------------------------------------------- parity: OpenVINO on the build's own ONNX graphs


def python_latents(build: Path, labels, **kw) -> np.ndarray:
    from ddt_export.pipeline import Pipeline

    return Pipeline.load(build, "onnxruntime").generate(labels, **kw).latents


def test_openvino_is_the_default_for_a_plain_build(built, ddt_run):
    summary = ddt_run_ok(ddt_run, built, "--labels", "1", "--steps", "2")
    assert summary["backend"] == "openvino" and summary["precision"] in ("bf16", "f32")


def test_openvino_no_sharing_matches_official_and_python(official, built, ddt_run, tmp_path):
    out = tmp_path / "lat.npy"
    summary = ddt_run_ok(ddt_run, *f32(built, "--labels", "1,7", "--seed", "3", "--save-latents", out))
    assert summary["precision"] == "f32" and summary["recompute"] == list(range(12)) and summary["decode_calls"] == 12
    got = np.load(out)
    assert got.shape == (2, 4, 8, 8) and got.dtype == np.float32
    assert rel_l2(got, reference(official, 3, [1, 7], None)) < TOL
    assert rel_l2(got, python_latents(built, [1, 7], seed=3)) < SAME_GRAPHS


def test_openvino_null_class_label_samples_unconditionally(official, built, ddt_run, tmp_path):
    out = tmp_path / "lat.npy"
    ddt_run_ok(ddt_run, *f32(built, "--labels", f"{NULL},4", "--seed", "2", "--save-latents", out))
    assert rel_l2(np.load(out), reference(official, 2, [NULL, 4], None)) < TOL


def test_openvino_explicit_recompute_with_noise_and_overrides(official, built, ddt_run, tmp_path):
    noise = seeded((3, 4, 8, 8), 11)
    np.save(tmp_path / "noise.npy", noise)
    out = tmp_path / "lat.npy"
    summary = ddt_run_ok(ddt_run, *f32(built, "--labels", "0,5,9", "--noise", tmp_path / "noise.npy", "--steps", "10", "--cfg", "2",
                                       "--interval", "0.2,0.8", "--recompute", "0,3,6", "--save-latents", out))
    assert summary["recompute"] == [0, 3, 6] and summary["encode_calls"] == 3 and summary["decode_calls"] == 10
    want = reference(official, noise, [0, 5, 9], [0, 3, 6], num_steps=10, guidance=2.0, interval_min=0.2, interval_max=0.8)
    assert rel_l2(np.load(out), want) < TOL
    py = python_latents(built, [0, 5, 9], noise=noise, recompute=[0, 3, 6], num_steps=10, guidance=2.0, interval_min=0.2,
                        interval_max=0.8)
    assert rel_l2(np.load(out), py) < SAME_GRAPHS


def test_openvino_uniform_sharing_matches_official(official, built, ddt_run, tmp_path):
    out = tmp_path / "lat.npy"
    summary = ddt_run_ok(ddt_run, *f32(built, "--labels", "2,4", "--seed", "5", "--sharing-ratio", "0.75", "--schedule", "uniform",
                                       "--save-latents", out))
    assert summary["recompute"] == [0, 4, 8]  # i % 4 == 0 for 12 steps
    assert rel_l2(np.load(out), reference(official, 5, [2, 4], [0, 4, 8])) < TOL


def test_openvino_dp_after_calibrate_matches_official(official, calibrated, ddt_run, tmp_path):
    build = calibrated  # `ddt-export calibrate --steps 12` on a copy of the build
    entries = json.loads((build / "manifest.json").read_text())["calibration"]
    (entry,) = entries.values()  # found by its sampler settings, whatever its key
    sim = np.load(build / entry["file"])
    out = tmp_path / "lat.npy"
    summary = ddt_run_ok(ddt_run, *f32(build, "--labels", "1,7", "--seed", "0", "--sharing-ratio", "0.75", "--save-latents", out))
    steps = official_dp(torch.from_numpy(sim), 3)  # K = 12 // 4
    assert summary["recompute"] == steps and abs(summary["sharing_ratio"] - 0.75) < 1e-9
    assert rel_l2(np.load(out), reference(official, 0, [1, 7], steps)) < TOL
    # another guidance is another calibration: refused, with the command that makes it
    one_line_error(run([ddt_run, build, "--labels", "1", "--sharing-ratio", "0.75", "--cfg", "2"]),
                   f"run `ddt-export calibrate {build} --steps 12 --cfg 2.0` once")


def test_openvino_bf16_runs_close_to_f32(built, ddt_run, tmp_path):
    from ddt_export.backends.openvino_backend import bf16_supported
    import openvino as ov

    if not bf16_supported(ov.Core()):
        one_line_error(run([ddt_run, built, "--labels", "1", "--inference-precision", "bf16"]), "no bf16 hardware")
        return
    ddt_run_ok(ddt_run, *f32(built, "--labels", "1,7", "--seed", "3", "--save-latents", tmp_path / "f32.npy"))
    summary = ddt_run_ok(ddt_run, built, "--labels", "1,7", "--seed", "3", "--save-latents", tmp_path / "bf16.npy")
    assert summary["precision"] == "bf16"
    assert rel_l2(np.load(tmp_path / "bf16.npy"), np.load(tmp_path / "f32.npy")) < 5e-2


# ---------------------------------------------------------------- parity: LibTorch modules


def test_build_records_libtorch_modules(lt_build):
    from ddt_export.manifest import read

    read(lt_build)  # every file, the .ts modules included, matches its sha256
    data = json.loads((lt_build / "manifest.json").read_text())  # as the C++ reader sees it
    section = data["libtorch"]
    assert section["format"] == "torchscript" and section["precision"] == "fp32"
    for name in ("encoder", "decoder"):
        graph = data["graphs"][name]
        assert section[name]["inputs"] == [t["name"] for t in graph["inputs"]]
        assert section[name]["file"] in data["files"]
        assert section[name]["check"]["max_rel_error"] <= section[name]["check"]["tolerance"]


def test_libtorch_matches_official_and_python(official, lt_build, ddt_run, tmp_path):
    out = tmp_path / "lat.npy"
    summary = ddt_run_ok(ddt_run, lt_build, "--backend", "libtorch", "--labels", "1,7", "--seed", "3", "--save-latents", out)
    assert summary["backend"] == "libtorch" and summary["recompute"] == list(range(12))
    got = np.load(out)
    assert rel_l2(got, reference(official, 3, [1, 7], None)) < TOL

    from ddt_export.pipeline import Pipeline

    py = Pipeline.load(lt_build, "torch").generate([1, 7], seed=3).latents
    assert rel_l2(got, py) < SAME_KERNELS


def test_libtorch_explicit_recompute(official, lt_build, ddt_run, tmp_path):
    out = tmp_path / "lat.npy"
    summary = ddt_run_ok(ddt_run, lt_build, "--backend", "libtorch", "--labels", "0,5,9", "--seed", "11", "--steps", "10",
                         "--cfg", "2", "--interval", "0.2,0.8", "--recompute", "0,3,6", "--save-latents", out)
    assert summary["recompute"] == [0, 3, 6] and summary["encode_calls"] == 3
    want = reference(official, 11, [0, 5, 9], [0, 3, 6], num_steps=10, guidance=2.0, interval_min=0.2, interval_max=0.8)
    assert rel_l2(np.load(out), want) < TOL


# ---------------------------------------------------------------- errors (the full table: test_ddt_run_errors.py)


def test_build_without_libtorch_modules(lt_build, ddt_run, tmp_path):
    plain = tmp_path / "plain"
    shutil.copytree(lt_build, plain)
    manifest = json.loads((plain / "manifest.json").read_text())
    del manifest["libtorch"]
    manifest.pop("digest", None)  # an edited manifest: drop its self-digest, as a hand edit would
    (plain / "manifest.json").write_text(json.dumps(manifest))
    one_line_error(run([ddt_run, plain, "--labels", "1", "--backend", "libtorch"]),
                   "has no libtorch section; rebuild with `ddt-export build --libtorch`")


def test_openvino_runs_int8_qdq_graphs(built_int8, ddt_run, tmp_path):
    """An int8 QDQ build (`ddt-export build --precision int8`: QuantizeLinear/DequantizeLinear around the matmuls) loads
    and samples as is."""
    import onnx

    manifest = json.loads((built_int8 / "manifest.json").read_text())
    assert manifest["precision"] == "int8"
    for name in ("encoder", "decoder"):
        graph = onnx.load(str(built_int8 / manifest["graphs"][name]["file"]), load_external_data=False)
        assert any(n.op_type == "QuantizeLinear" for n in graph.graph.node), name
    out = tmp_path / "lat.npy"
    summary = ddt_run_ok(ddt_run, *f32(built_int8, "--labels", "1,7", "--seed", "3", "--steps", "4", "--save-latents", out))
    got = np.load(out)
    assert summary["decode_calls"] == 4 and got.shape == (2, 4, 8, 8) and np.isfinite(got).all()
