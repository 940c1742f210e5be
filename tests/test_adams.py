"""The Adams multistep sampler: coefficients against the official closed forms, convergence order on an analytic
field, and whole runs against an independent transcription of the official AdamLMSampler (tests/reference)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddt_export.backends.torch_backend import TorchBackend
from ddt_export.errors import DDTError
from ddt_export.model import DDT
from ddt_export.official import load_weights, read_config, read_weights
from ddt_export.sampler import SamplerSettings, sample
from ddt_export.solvers import plan_steps, timesteps
from tests.conftest import rel_l2, seeded
from tests.reference.official_ddt import official_adams_coefficients, official_adams_sample, official_timesteps
from tests.test_sampler import FieldRunner


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("n,last,shift", [(10, None, 1.0), (50, 0.04, 1.0), (250, 0.04, 1.0), (40, None, 3.0)])
def test_coefficients_equal_the_official_closed_forms_in_float64(order, n, last, shift):
    ours = plan_steps(n, last, shift, "adams", order).coefficients
    want = official_adams_coefficients(n, order, official_timesteps(n, last, shift), torch.float64)
    for i, (c, w) in enumerate(zip(ours, want)):
        assert len(c) == min(order, i + 1)
        np.testing.assert_allclose(c, [float(v) for v in w], rtol=2e-6, atol=1e-6, err_msg=f"step {i}")
        assert abs(sum(c) - 1.0) <= 1e-6 * sum(abs(v) for v in c)  # sum to 1, up to their float32 rounding


def test_float64_coefficients_stay_finite_where_the_official_float32_ones_do_not():
    """The official float32 evaluation cancels: order 3 at 1,600 steps has non-finite weights; ours are finite and
    equal to the official ones wherever those are finite and well conditioned (order 2 at 250 steps)."""
    official32 = official_adams_coefficients(1600, 3, official_timesteps(1600, 0.04, 1.0), torch.float32)
    assert not all(np.isfinite(float(v)) for c in official32 for v in c)
    assert all(np.isfinite(v) for c in plan_steps(1600, 0.04, 1.0, "adams", 3).coefficients for v in c)
    official2 = official_adams_coefficients(250, 2, official_timesteps(250, 0.04, 1.0), torch.float32)
    ours2 = plan_steps(250, 0.04, 1.0, "adams", 2).coefficients
    worst = max(abs(a - float(b)) / max(abs(float(b)), 1e-3) for c, w in zip(ours2, official2) for a, b in zip(c, w))
    assert worst < 1e-2  # float32 cancellation in the official weights, not a different formula
    assert ours2[-1][1] == pytest.approx(6.2, abs=0.05)  # the wide last step is extrapolated with a weight growing with N


@pytest.mark.parametrize("n,last,shift", [(250, 0.04, 1.0), (50, None, 3.0), (40, None, 0.3), (7, 0.2, 1.0), (12, 0.04, 1.5)])
def test_adams_time_is_the_official_float32_running_sum(n, last, shift):
    steps = plan_steps(n, last, shift, "adams", 2)
    grid = torch.from_numpy(timesteps(n, last, shift))
    t, want = torch.zeros(1, dtype=torch.float32), []
    for i in range(n):  # AdamLMSampler: t_cur += timedeltas[i]
        want.append(float(t[0]))
        t += grid[i + 1] - grid[i]
    np.testing.assert_array_equal(steps.t, np.array(want, np.float32))
    np.testing.assert_array_equal(plan_steps(n, last, shift, "euler").t, grid[:-1].numpy())


def test_the_running_sum_is_not_always_the_grid():
    """Why Adams keeps the official running sum instead of the grid: here steps 2 and 3 sit one float32 ulp above it."""
    t, grid = plan_steps(12, 0.04, 1.5, "adams", 2).t, timesteps(12, 0.04, 1.5)[:-1]
    off = np.flatnonzero(t != grid)
    assert off.tolist() == [2, 3]
    assert (np.nextafter(grid[off], np.float32(1)) == t[off]).all()


@pytest.mark.parametrize("order", [2, 3])
def test_adams_converges_at_second_order_on_a_linear_field(order):
    """dx/dt = a x on a uniform grid (last step 1/N): halving the step divides the error by 4. Order 3 is no better
    than 2 here: the official start-up (order 1, then 2, ...) leaves an O(h^2) global error whatever the order."""
    expected = 4.0
    errors = []
    for n in (40, 80, 160):
        runner = FieldRunner(2, (1, 1, 1), 1.5, 1.5)
        s = SamplerSettings(num_steps=n, sampler="adams", order=order)
        x = sample(runner, np.ones((1, 1, 1, 1), np.float32), [0], 1, s, range(n)).astype(np.float64)
        errors.append(abs(float(x.ravel()[0]) - np.exp(1.5)))
    assert errors[0] / errors[1] == pytest.approx(expected, rel=0.25) and errors[1] / errors[2] == pytest.approx(expected, rel=0.25)


CASES = [
    dict(order=1, num_steps=12),
    dict(order=2, num_steps=12),
    dict(order=3, num_steps=16),
    dict(order=4, num_steps=16),
    dict(order=2, num_steps=12, refresh=3),
    dict(order=4, num_steps=13, refresh=3),
    dict(order=3, num_steps=10, guidance=1.0),
    dict(order=2, num_steps=10, interval_min=0.0, interval_max=1.0, guidance=4.0),
    dict(order=3, num_steps=14, timeshift=3.0, refresh=2),
    dict(order=2, num_steps=9, recompute=[0, 1, 5]),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_whole_runs_match_the_official_adams_sampler(official, case):
    case = dict(case)
    refresh, recompute = case.pop("refresh", 1), case.pop("recompute", None)
    src = read_config(official.config)
    settings = src.sampler.with_overrides(sampler="adams", **case)
    model = load_weights(DDT(src.arch), read_weights(official.ckpt), "ckpt")
    noise, labels = seeded((3, 4, 8, 8), 11), [2, 4, 9]
    steps = recompute if recompute is not None else [i for i in range(settings.num_steps) if i % refresh == 0]
    got = sample(TorchBackend(model).runner(6), noise, labels, src.null_class, settings, steps)
    want = official_adams_sample(official.ema, torch.from_numpy(noise), torch.tensor(labels), src.null_class, settings.num_steps,
                                 settings.guidance, settings.interval_min, settings.interval_max, settings.timeshift,
                                 settings.last_step, order=settings.order, state_refresh_rate=refresh, recompute=recompute)
    exact = official_adams_sample(official.ema, torch.from_numpy(noise), torch.tensor(labels), src.null_class, settings.num_steps,
                                  settings.guidance, settings.interval_min, settings.interval_max, settings.timeshift,
                                  settings.last_step, order=settings.order, state_refresh_rate=refresh, recompute=recompute,
                                  coeff_dtype=torch.float64)
    assert rel_l2(got, exact.numpy()) < 1e-5  # the official formula, its weights in float64
    assert rel_l2(got, want.numpy()) < 1e-4  # the official class as shipped (float32 weights: ~1e-5 of cancellation)


def test_skipping_the_unconditional_half_leaves_adams_unchanged(official):
    src = read_config(official.config)
    settings = src.sampler.with_overrides(sampler="adams", order=3, num_steps=14, interval_min=0.3, interval_max=0.8)
    model = load_weights(DDT(src.arch), read_weights(official.ckpt), "ckpt")
    noise, labels = seeded((2, 4, 8, 8), 5), [1, 3]
    runs = [sample(TorchBackend(model).runner(4), noise, labels, src.null_class, settings, [0, 4, 8], full_cfg=full) for full in (False, True)]
    assert rel_l2(runs[0], runs[1]) < 1e-6


@pytest.mark.parametrize("overrides,message", [
    (dict(sampler="heun"), "unknown sampler 'heun'; choose euler or adams"),
    (dict(sampler="adams", order=0), "order must be from 1 to 4 \\(got 0\\)"),
    (dict(sampler="adams", order=5), "order must be from 1 to 4 \\(got 5\\)"),
    (dict(sampler="adams", order=2.5), "order must be a whole number from 1 to 4 \\(got 2.5\\)"),
    (dict(order=3), "order 3 is for the Adams sampler \\(Euler is order 1\\); add --sampler adams"),
])
def test_bad_solver_settings_are_one_line_errors(overrides, message):
    with pytest.raises(DDTError, match=message):
        SamplerSettings().with_overrides(**overrides)


def test_choosing_adams_takes_its_official_default_order_and_euler_resets_it():
    s = SamplerSettings().with_overrides(sampler="adams")
    assert (s.sampler, s.order) == ("adams", 2)
    assert s.with_overrides(order=4).order == 4
    assert s.with_overrides(sampler="euler").order == 1


# ----------------------------------------------------------------------------- builds, backends, calibrations


def _adams_yaml(official, tmp_path, order_line: str | None, cls: str = "adam_sampling.AdamLMSampler"):
    text = official.config.read_text().replace("sharing_sampling.EulerSampler", cls)
    if order_line is not None:
        text = text.replace("    init_args:\n      num_steps:", f"    init_args:\n      {order_line}\n      num_steps:")
    path = tmp_path / "adams.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("order_line,order", [("order: 3", 3), (None, 2)])
def test_an_official_adams_config_makes_adams_the_builds_default(official, tmp_path, order_line, order):
    src = read_config(_adams_yaml(official, tmp_path, order_line))
    assert (src.sampler.sampler, src.sampler.order) == ("adams", order)
    assert read_config(official.config).sampler.sampler == "euler"


def test_an_unknown_sampler_class_in_a_config_is_refused(official, tmp_path):
    with pytest.raises(DDTError, match="class_path names DDIMSampler; ddt-export runs EulerSampler and AdamLMSampler"):
        read_config(_adams_yaml(official, tmp_path, None, cls="ddim_sampling.DDIMSampler"))


@pytest.mark.parametrize("backend,options", [("onnxruntime", {}), ("openvino", {"precision": "fp32"})])
def test_every_cpu_backend_matches_the_official_adams(official, built, backend, options):
    from ddt_export.pipeline import Pipeline

    pipe = Pipeline.load(built, backend, **options)
    noise, labels = seeded((2, 4, 8, 8), 3), [1, 6]
    got = pipe.generate(labels, noise=noise, recompute=[0, 4, 8], sampler="adams", order=3, num_steps=12).latents
    want = official_adams_sample(official.ema, torch.from_numpy(noise), torch.tensor(labels), pipe.null_class, 12,
                                 pipe.defaults.guidance, pipe.defaults.interval_min, pipe.defaults.interval_max, pipe.defaults.timeshift,
                                 pipe.defaults.last_step, order=3, recompute=[0, 4, 8], coeff_dtype=torch.float64)
    assert rel_l2(got, want.numpy()) < 1e-4


def test_euler_and_adams_calibrations_coexist_in_one_build(built, tmp_path):
    import shutil

    from ddt_export.manifest import read
    from ddt_export.pipeline import Pipeline

    b = tmp_path / "b"
    shutil.copytree(built, b)
    pipe = Pipeline.load(b, "onnxruntime")
    euler = pipe.defaults.with_overrides(num_steps=8)
    adams = euler.with_overrides(sampler="adams", order=2)
    assert pipe.calibrate_and_store(euler, samples=2) and pipe.calibrate_and_store(adams, samples=2)
    m = read(b)
    assert sorted((e.sampler.sampler, e.sampler.order) for e in m.doc.calibration.values()) == [("adams", 2), ("euler", 1)]
    sim_e, sim_a = m.similarity(euler), m.similarity(adams)
    assert sim_e.shape == sim_a.shape == (8, 8) and not np.array_equal(sim_e, sim_a)
    assert m.similarity(adams.with_overrides(order=3)) is None  # another order: not this matrix
