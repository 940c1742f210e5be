"""Guidance-aware batches: where guidance is off only the conditional half of the CFG batch runs, with the official
result (within float rounding) on every CPU backend, including a state computed before the guidance interval and
reused inside it, guidance 1.0 (no step guided) and a user batch of 3. The TensorRT backend's half-batch contexts
are checked over the real bindings in tests/backends/tensorrt/test_bindings_api.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddt_export.backends import open_backend
from ddt_export.manifest import read
from ddt_export.pipeline import Pipeline
from ddt_export.sampler import cfg_halves, guidance_scales, sample
from tests.conftest import rel_l2, seeded
from tests.reference.official_ddt import official_sample

TOL = 1e-5  # relative L2 vs the official full-CFG loop, and skip vs --full-cfg


def test_which_calls_need_the_unconditional_half():
    scales = [1.0, 1.0, 2.0, 2.0, 1.0, 1.0]
    assert cfg_halves(scales, [0, 3]) == ({0: True, 3: True}, [False, False, True, True, False, False])
    assert cfg_halves(scales, [0, 4]) == ({0: True, 4: False}, [False, False, True, True, False, False])
    # a state computed at an unguided step 1 serves guided steps 2 and 3: the encoder there runs both halves
    assert cfg_halves(scales, [0, 1, 5])[0] == {0: False, 1: True, 5: False}
    assert cfg_halves([1.0] * 4, [0, 2]) == ({0: False, 2: False}, [False] * 4)  # guidance 1.0: never
    assert cfg_halves(scales, [0, 3], full_cfg=True) == ({0: True, 3: True}, [True] * 6)


class Counting:
    """A runner wrapper that records which row set each call ran on."""

    def __init__(self, runner):
        self.inner, self.calls = runner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode(self, cond_only=False):
        self.calls.append(("encode", cond_only))
        self.inner.encode(cond_only)

    def decode(self, cond_only=False):
        self.calls.append(("decode", cond_only))
        self.inner.decode(cond_only)


BOUNDARY = dict(num_steps=12, guidance=3.0, interval_min=0.45, interval_max=0.9, timeshift=1.0, last_step=0.05)
RECOMPUTE = [0, 4, 8]
BACKENDS = ["torch", "onnxruntime", "openvino"]


def backend_for(name: str, build):
    if name == "openvino":
        pytest.importorskip("openvino")
        from ddt_export.backends.openvino_backend import OpenVinoBackend

        return OpenVinoBackend(read(build), precision="fp32")  # f32: bf16 would differ by its own rounding
    return open_backend(name, read(build))


@pytest.fixture(scope="module")
def boundary(built):
    """The settings of BOUNDARY have a recompute step before the interval whose state is reused inside it."""
    settings = read(built).sampler.with_overrides(**BOUNDARY)
    scales = guidance_scales(settings)
    enc, dec = cfg_halves(scales, RECOMPUTE)
    crossing = [r for r in RECOMPUTE if scales[r] == 1.0 and enc[r]]
    assert crossing, (scales, enc)  # the case this test is about really occurs
    assert 0 < sum(dec) < len(dec)
    return settings


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("labels", [[3], [0, 4, 10]], ids=["B1", "B3-with-null"])
def test_skip_matches_the_official_full_cfg_loop(official, built, boundary, name, labels):
    noise = seeded((len(labels), 4, 8, 8), 5)
    runner = Counting(backend_for(name, built).runner(2 * len(labels)))
    got = np.asarray(runner.host(sample(runner, noise, labels, 10, boundary, RECOMPUTE)), np.float32)
    want = official_sample(official.ema, torch.from_numpy(noise), torch.tensor(labels), 10, boundary.num_steps, boundary.guidance,
                           boundary.interval_min, boundary.interval_max, boundary.timeshift, boundary.last_step, RECOMPUTE)
    assert rel_l2(got, want.numpy()) < TOL
    scales = guidance_scales(boundary)
    enc, dec = cfg_halves(scales, RECOMPUTE)
    want_calls = []
    for i in range(boundary.num_steps):
        if i in enc:
            want_calls.append(("encode", not enc[i]))
        want_calls.append(("decode", not dec[i]))
    assert runner.calls == want_calls


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("guidance", [1.0, 2.5])
def test_skip_equals_full_cfg_on_every_cpu_backend(built, name, guidance):
    m = read(built)
    pipe = Pipeline(backend_for(name, built), arch=m.arch, null_class=m.null_class, sampler=m.sampler, space=m.space, manifest=m)
    kw = dict(seed=2, num_steps=9, guidance=guidance, recompute=[0, 3, 6])
    skip = pipe.generate([1, 7, 2], **kw).latents
    full = pipe.generate([1, 7, 2], full_cfg=True, **kw).latents
    assert rel_l2(skip, full) < TOL
    assert not np.array_equal(skip, np.zeros_like(skip))


def test_guidance_one_runs_only_conditional_halves(built):
    m = read(built)
    runner = Counting(open_backend("onnxruntime", m).runner(2))
    sample(runner, seeded((1, 4, 8, 8), 0), [3], 10, m.sampler.with_overrides(num_steps=6, guidance=1.0), [0, 2, 4])
    assert runner.calls and all(cond_only for _, cond_only in runner.calls)
    runner.calls.clear()
    sample(runner, seeded((1, 4, 8, 8), 0), [3], 10, m.sampler.with_overrides(num_steps=6, guidance=1.0), [0, 2, 4], full_cfg=True)
    assert not any(cond_only for _, cond_only in runner.calls)


def test_cli_full_cfg_flag(cli, built, tmp_path):
    args = ["generate", built, "--labels", "1,7", "--seed", "0", "--steps", "8", "--cfg", "2.0"]
    assert cli(*args, "--save-latents", tmp_path / "skip.npy").code == 0
    assert cli(*args, "--full-cfg", "--save-latents", tmp_path / "full.npy").code == 0
    assert rel_l2(np.load(tmp_path / "skip.npy"), np.load(tmp_path / "full.npy")) < TOL
