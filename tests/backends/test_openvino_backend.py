"""OpenVINO against PyTorch fp32: each graph and whole runs, in fp32 and in bf16, and in-place buffers.

bf16 is held to the build's bf16 tolerance (export.TOLERANCE, max error relative to the
largest value), the same measure the fp16 path is held to; fp32 to the fp32 one.
"""

import numpy as np
import pytest

from ddt_export.backends import NAMES, open_backend
from ddt_export.dtypes import TOLERANCE
from ddt_export.manifest import read
from ddt_export.pipeline import Pipeline
from tests.conftest import rel_l2, seeded

ov = pytest.importorskip("openvino", reason="the openvino backend needs `pip install openvino`")
from ddt_export.backends.openvino_backend import OpenVinoBackend, bf16_supported  # noqa: E402

PRECISIONS = ["fp32", pytest.param("bf16", marks=pytest.mark.skipif(not bf16_supported(ov.Core()), reason="this CPU has no bf16 matmul hardware"))]


def rel_max(got, want) -> float:
    return float(np.abs(np.asarray(got) - want).max() / np.abs(want).max())


def fill(r):
    r.x[:] = seeded(r.x.shape, 1)
    r.t[:] = [0.0, 0.3, 0.7, 1.0]
    r.y[:] = [0, 3, 9, 10]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_graphs_match_torch_fp32_per_call(built, precision):
    m = read(built)
    ov_r, torch_r = OpenVinoBackend(m, precision=precision).runner(4), open_backend("torch", m).runner(4)
    for r in (ov_r, torch_r):
        fill(r)
        r.encode()
    s_want = torch_r.host(torch_r.s)
    assert rel_max(ov_r.s, s_want) < TOLERANCE[precision]
    ov_r.s[:] = s_want  # the decoder on the same state, so its own error is measured
    for r in (ov_r, torch_r):
        r.decode()
    assert rel_max(ov_r.v, torch_r.v) < TOLERANCE[precision]
    if precision == "bf16":
        assert rel_max(ov_r.v, torch_r.v) > 1e-6  # it really ran in bf16


@pytest.mark.parametrize("precision", PRECISIONS)
def test_sampling_runs_match_torch_fp32(built, precision):
    noise = seeded((2, 4, 8, 8), 11)
    want = Pipeline.load(built, "torch").generate([1, 7], noise=noise, recompute=[0, 4, 8]).latents
    pipe = Pipeline.load(built, "torch")
    pipe.backend = OpenVinoBackend(read(built), precision=precision)
    got = pipe.generate([1, 7], noise=noise, recompute=[0, 4, 8]).latents
    assert rel_l2(got, want) < {"fp32": 1e-5, "bf16": 2e-2}[precision]


def test_registry_opens_it_with_the_cpu_default(built):
    assert "openvino" in NAMES
    backend = open_backend("openvino", read(built))
    assert backend.name == "openvino"
    assert backend.precision == ("bf16" if bf16_supported(ov.Core()) else "fp32")
    result = Pipeline.load(built, "openvino").generate([3], seed=0, num_steps=3)
    assert np.isfinite(result.latents).all()


def test_buffers_are_bound_once_and_written_in_place(built):
    backend = OpenVinoBackend(read(built), precision="fp32")
    r = backend.runner(2)
    s_before, v_before = r.s, r.v
    r.x[:] = seeded(r.x.shape, 2)
    r.t[:] = 0.5
    r.encode()
    r.decode()
    assert r.s is s_before and r.v is v_before and np.abs(r.s).sum() > 0 and np.abs(r.v).sum() > 0
    v1 = r.v.copy()
    r.x[:] = seeded(r.x.shape, 3)  # a write into the numpy buffer is the next call's input
    r.decode()
    assert not np.array_equal(v1, r.v)
    assert backend.compiled(2) is backend.compiled(2)  # compiled once per batch size


def test_unknown_precision_is_one_line(built):
    from ddt_export.errors import DDTError

    with pytest.raises(DDTError, match="unknown OpenVINO precision 'int4'"):
        OpenVinoBackend(read(built), precision="int4")
