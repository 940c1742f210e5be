"""Guidance-aware batches in the C++ runtime (issue 15): `ddt-run` runs only the conditional half of the CFG batch
where guidance is off, as the Python loop does (ddt_export/sampler.py: guidance_scales, cfg_halves, sample).

With the skip (the default) ddt-run matches the independent official oracle (full CFG at every call) within 1e-4 and
the Python runtime on the same graphs and backend within 1e-5; skip vs --full-cfg within 1e-5 on OpenVINO f32 and
LibTorch; the boundary case (a state computed before the interval and reused inside it), guidance 1.0 (no call runs
the unconditional half) and a user batch of 3 including the null class. The calls ddt-run makes are checked against
the plan Python's cfg_halves makes for the same settings, through the --json counts.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddt_export.sampler import SamplerSettings, cfg_halves, guidance_scales
from tests.conftest import rel_l2, seeded
from tests.reference.official_ddt import official_sample
from tests.runtime.test_cpp_runtime import ddt_run_ok

TOL = 1e-4  # vs the official implementation
SAME = 1e-5  # vs the Python runtime on the same graphs and backend, and skip vs --full-cfg
NULL = 10

# 12 steps, interval 0.45-0.9: recompute step 4 (t = 0.317, unguided) serves guided steps 5..7
BOUNDARY = dict(num_steps=12, guidance=3.0, interval_min=0.45, interval_max=0.9, timeshift=1.0, last_step=0.05)
RECOMPUTE = [0, 4, 8]


def plan(settings: dict, recompute: list, full_cfg: bool = False) -> tuple[dict, list]:
    s = SamplerSettings(**settings)
    return cfg_halves(guidance_scales(s), recompute, full_cfg)


def flags(settings: dict, recompute: list) -> list:
    return ["--steps", settings["num_steps"], "--cfg", settings["guidance"], "--interval",
            f"{settings['interval_min']},{settings['interval_max']}", "--timeshift", settings["timeshift"],
            "--last-step", settings["last_step"], "--recompute", ",".join(map(str, recompute))]


def check_calls(summary: dict, settings: dict, recompute: list, full_cfg: bool = False) -> None:
    enc, dec = plan(settings, recompute, full_cfg)
    assert summary["full_cfg"] is full_cfg
    assert summary["encode_calls"] == len(enc) and summary["decode_calls"] == len(dec)
    assert summary["encode_cond_only_calls"] == sum(not both for both in enc.values())
    assert summary["decode_cond_only_calls"] == sum(not both for both in dec)


def test_the_boundary_case_occurs():
    enc, dec = plan(BOUNDARY, RECOMPUTE)
    scales = guidance_scales(SamplerSettings(**BOUNDARY))  # on the settings' own grid: 12 steps, last 0.05, shift 1.0
    assert [r for r in RECOMPUTE if scales[r] == 1.0 and enc[r]] == [4]  # unguided step, state reused at guided ones
    assert 0 < sum(dec) < len(dec) and not all(enc.values())


@pytest.mark.parametrize("labels", [[3], [0, 4, NULL]], ids=["B1", "B3-with-null"])
def test_openvino_skip_matches_official_and_python(official, built, ddt_run, tmp_path, labels):
    from ddt_export.pipeline import Pipeline

    noise = seeded((len(labels), 4, 8, 8), 5)
    np.save(tmp_path / "noise.npy", noise)
    out = tmp_path / "lat.npy"
    summary = ddt_run_ok(ddt_run, built, "--backend", "openvino", "--inference-precision", "f32", "--labels",
                         ",".join(map(str, labels)), "--noise", tmp_path / "noise.npy", *flags(BOUNDARY, RECOMPUTE),
                         "--save-latents", out)
    check_calls(summary, BOUNDARY, RECOMPUTE)
    got = np.load(out)
    s = BOUNDARY
    want = official_sample(official.ema, torch.from_numpy(noise), torch.tensor(labels), NULL, s["num_steps"], s["guidance"],
                           s["interval_min"], s["interval_max"], s["timeshift"], s["last_step"], RECOMPUTE).numpy()
    assert rel_l2(got, want) < TOL
    py = Pipeline.load(built, "openvino", precision="fp32").generate(labels, noise=noise, recompute=RECOMPUTE, **BOUNDARY)
    assert rel_l2(got, py.latents) < SAME


def skip_and_full(ddt_run, build, tmp_path, *args) -> tuple[np.ndarray, np.ndarray]:
    out = {}
    for full in (False, True):
        path = tmp_path / f"{'full' if full else 'skip'}.npy"
        summary = ddt_run_ok(ddt_run, build, *args, *(["--full-cfg"] if full else []), "--save-latents", path)
        assert summary["full_cfg"] is full
        if full:
            assert summary["encode_cond_only_calls"] == summary["decode_cond_only_calls"] == 0
        out[full] = np.load(path)
    return out[False], out[True]


@pytest.mark.parametrize("guidance", [1.0, 2.5])
def test_openvino_skip_equals_full_cfg(built, ddt_run, tmp_path, guidance):
    common = ["--labels", f"1,7,{NULL}", "--seed", "2", "--steps", "9", "--cfg", guidance, "--recompute", "0,3,6"]
    skip, full = skip_and_full(ddt_run, built, tmp_path, "--backend", "openvino", "--inference-precision", "f32", *common)
    assert rel_l2(skip, full) < SAME and np.abs(skip).sum() > 0


@pytest.mark.parametrize("guidance", [1.0, 2.5])
def test_libtorch_skip_equals_full_cfg_and_python(lt_build, ddt_run, tmp_path, guidance):
    from ddt_export.pipeline import Pipeline

    common = ["--labels", f"1,7,{NULL}", "--seed", "2", "--steps", "9", "--cfg", guidance, "--recompute", "0,3,6"]
    skip, full = skip_and_full(ddt_run, lt_build, tmp_path, "--backend", "libtorch", *common)
    assert rel_l2(skip, full) < SAME and np.abs(skip).sum() > 0
    py = Pipeline.load(lt_build, "torch").generate([1, 7, NULL], seed=2, num_steps=9, guidance=guidance, recompute=[0, 3, 6])
    assert rel_l2(skip, py.latents) < SAME


def test_libtorch_boundary_case_matches_official(official, lt_build, ddt_run, tmp_path):
    noise = seeded((3, 4, 8, 8), 5)
    np.save(tmp_path / "noise.npy", noise)
    summary = ddt_run_ok(ddt_run, lt_build, "--backend", "libtorch", "--labels", f"0,4,{NULL}", "--noise", tmp_path / "noise.npy",
                         *flags(BOUNDARY, RECOMPUTE), "--save-latents", tmp_path / "lat.npy")
    check_calls(summary, BOUNDARY, RECOMPUTE)
    s = BOUNDARY
    want = official_sample(official.ema, torch.from_numpy(noise), torch.tensor([0, 4, NULL]), NULL, s["num_steps"], s["guidance"],
                           s["interval_min"], s["interval_max"], s["timeshift"], s["last_step"], RECOMPUTE).numpy()
    assert rel_l2(np.load(tmp_path / "lat.npy"), want) < TOL


def test_guidance_one_runs_only_conditional_halves(built, ddt_run):
    settings = {**BOUNDARY, "guidance": 1.0}
    summary = ddt_run_ok(ddt_run, built, "--backend", "openvino", "--inference-precision", "f32", "--labels", "3", "--seed", "0",
                         *flags(settings, RECOMPUTE))
    check_calls(summary, settings, RECOMPUTE)
    assert summary["encode_cond_only_calls"] == summary["encode_calls"] == 3
    assert summary["decode_cond_only_calls"] == summary["decode_calls"] == 12
    full = ddt_run_ok(ddt_run, built, "--backend", "openvino", "--inference-precision", "f32", "--labels", "3", "--seed", "0",
                      *flags(settings, RECOMPUTE), "--full-cfg")
    check_calls(full, settings, RECOMPUTE, full_cfg=True)


def test_build_defaults_skip_where_guidance_is_off(built, ddt_run):
    """The session build's defaults (interval 0.3-0.9, 12 steps, no sharing): ddt-run skips exactly where Python would."""
    from tests.conftest import SAMPLER

    summary = ddt_run_ok(ddt_run, built, "--labels", "1", "--steps", "12")
    enc, dec = plan(SAMPLER, list(range(12)))
    assert summary["decode_cond_only_calls"] == sum(not d for d in dec) > 0
    assert summary["encode_cond_only_calls"] == sum(not e for e in enc.values())
