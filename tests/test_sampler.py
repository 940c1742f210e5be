"""The sampling loop: the official grid, Euler against an analytic field, and whole runs against the official sampler."""

import numpy as np
import pytest
import torch

from ddt_export.backends.torch_backend import TorchBackend
from ddt_export.model import DDT
from ddt_export.official import load_weights, read_config, read_weights
from ddt_export.sampler import SamplerSettings, sample
from ddt_export.solvers import timesteps
from tests.conftest import rel_l2, seeded
from tests.reference.official_ddt import official_sample, official_timesteps


@pytest.mark.parametrize("n,last,shift", [(1, None, 1.0), (7, None, 1.0), (250, 0.04, 1.0), (50, 0.05, 3.0), (33, None, 0.3)])
def test_grid_is_bit_identical_to_official(n, last, shift):
    np.testing.assert_array_equal(timesteps(n, last, shift), official_timesteps(n, last, shift).numpy())


class FieldRunner:
    """v(x, t) = a * x for the cond half and b * x for the uncond half; no encoder state."""

    def __init__(self, batch, shape, a, b):
        self.x = np.zeros((batch, *shape), np.float32)
        self.t, self.y = np.zeros(batch, np.float32), np.zeros(batch, np.int64)
        self.v = np.zeros_like(self.x)
        self.a, self.b, self.encodes = a, b, []

    def encode(self, cond_only=False):
        self.encodes.append(float(self.t[-1]))

    def decode(self, cond_only=False):
        half = len(self.x) // 2
        if not cond_only:
            self.v[:half] = self.b * self.x[:half]
        self.v[half:] = self.a * self.x[half:]

    def array(self, a):
        return a


def test_euler_on_a_linear_field_matches_the_closed_form_product():
    # dx/dt = (b + w (a - b)) x inside the interval, a x outside: Euler multiplies by (1 + k dt) each step.
    a, b, w, n = 0.7, -0.4, 2.5, 40
    settings = SamplerSettings(num_steps=n, guidance=w, interval_min=0.3, interval_max=0.8, timeshift=2.0)
    noise = seeded((2, 1, 2, 2), 0)
    runner = FieldRunner(4, (1, 2, 2), a, b)
    got = sample(runner, noise, [0, 1], 5, settings, recompute=[0, 10, 20])
    grid = timesteps(n, None, 2.0).astype(np.float64)
    factor = 1.0
    for t0, t1 in zip(grid, grid[1:]):
        k = b + w * (a - b) if 0.3 < t0 < 0.8 else a
        factor *= 1 + k * (t1 - t0)
    np.testing.assert_allclose(got, noise * factor, rtol=1e-5)
    assert runner.encodes == pytest.approx([grid[0], grid[10], grid[20]])
    assert list(runner.y) == [5, 5, 0, 1]  # [uncond; cond]


def test_euler_converges_to_the_exact_flow():
    # dx/dt = a x -> x(1) = x(0) e^a; Euler's error shrinks like 1/N
    errors = []
    for n in (50, 100, 200):
        runner = FieldRunner(2, (1, 1, 1), 0.5, 0.5)
        x = sample(runner, np.ones((1, 1, 1, 1), np.float32), [0], 1, SamplerSettings(num_steps=n), range(n))
        errors.append(abs(float(x.ravel()[0]) - np.exp(0.5 * (1 - 0))))
    assert errors[0] / errors[1] == pytest.approx(2, rel=0.1) and errors[1] / errors[2] == pytest.approx(2, rel=0.1)


CASES = [
    dict(num_steps=12, recompute=None),
    dict(num_steps=12, recompute=[0, 3, 6, 9]),
    dict(num_steps=7, recompute=[0, 1, 5], guidance=1.0),
    dict(num_steps=10, recompute=[0, 4], timeshift=3.0, guidance=4.0, interval_min=0.0, interval_max=1.0),
    dict(num_steps=5, recompute=None, last_step=None, timeshift=0.5, interval_min=0.2, interval_max=0.5),
]


@pytest.mark.parametrize("case", CASES)
def test_whole_runs_match_the_official_sampler(official, case):
    case = dict(case)
    recompute = case.pop("recompute")
    src = read_config(official.config)
    settings = src.sampler.with_overrides(**case)
    if "last_step" in case:
        from dataclasses import replace

        settings = replace(settings, last_step=None)
    model = load_weights(DDT(src.arch), read_weights(official.ckpt), "ckpt")
    noise, labels = seeded((3, 4, 8, 8), 7), [0, 4, 9]
    steps = list(range(settings.num_steps)) if recompute is None else recompute
    got = sample(TorchBackend(model).runner(6), noise, labels, src.null_class, settings, steps)
    want = official_sample(official.ema, torch.from_numpy(noise), torch.tensor(labels), src.null_class, settings.num_steps,
                           settings.guidance, settings.interval_min, settings.interval_max, settings.timeshift,
                           settings.last_step, recompute)
    assert rel_l2(got, want.numpy()) < 1e-5
