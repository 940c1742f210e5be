"""The plan and the files, without Ray: per-sample determinism, shard layout, the merged format."""

from __future__ import annotations

import io

import numpy as np
import pytest

from ddt_export.scale.merge import write_npz_streamed
from ddt_export.scale.shards import Job, sample_seed


def job(**kw) -> Job:
    base = dict(build="/b", build_name="b", fingerprint="f", backend="onnxruntime", num_samples=23, classes=(0, 3, 5), per_class=1,
                seed=7, batch=5, sampler={"num_steps": 4}, schedule="all", sharing_ratio=None, recompute=(0, 1, 2, 3), latent_shape=(1, 4, 4))
    return Job(**{**base, **kw})


def test_shards_are_fixed_contiguous_ranges_of_batch():
    shards = job().shards()
    assert [(s.lo, s.hi) for s in shards] == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 23)]
    assert [s.index for s in shards] == list(range(5))


def test_noise_of_a_sample_depends_on_seed_and_index_only():
    j = job()
    whole = j.noise(0, 23)
    pieces = np.concatenate([j.noise(lo, hi) for lo, hi in ((0, 3), (3, 4), (4, 17), (17, 23))])
    assert np.array_equal(whole, pieces)  # any split gives the same samples
    assert np.array_equal(job(batch=2, num_samples=100).noise(5, 9), whole[5:9])  # batch and N don't enter
    assert not np.array_equal(job(seed=8).noise(0, 23), whole)
    assert len({sample_seed(7, i) for i in range(1000)}) == 1000
    assert whole.dtype == np.float32 and whole.shape == (23, 1, 4, 4)
    assert abs(float(whole.std()) - 1.0) < 0.15


def test_labels_cycle_or_come_in_per_class_blocks():
    assert job().labels(0, 7).tolist() == [0, 3, 5, 0, 3, 5, 0]
    assert job(per_class=2).labels(0, 8).tolist() == [0, 0, 3, 3, 5, 5, 0, 0]
    assert job(per_class=2).labels(3, 6).tolist() == [3, 5, 5]  # from i alone


def test_key_ignores_where_the_build_is_but_not_what_is_sampled():
    assert job().key_hash() == job(build="/elsewhere", build_name="copy").key_hash()
    for change in (dict(seed=8), dict(batch=6), dict(recompute=(0, 2)), dict(backend="torch"), dict(fingerprint="g"),
                   dict(sampler={"num_steps": 4, "sampler": "adams", "order": 2})):  # another solver: other samples
        assert job(**change).key_hash() != job().key_hash(), change


def test_streamed_npz_is_byte_for_byte_numpy_savez():
    rng = np.random.default_rng(0)
    chunks = [rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8) for n in (5, 5, 3)]
    labels = np.arange(13, dtype=np.int64)
    ours, theirs = io.BytesIO(), io.BytesIO()
    write_npz_streamed(ours, [("arr_0", np.uint8, (13, 4, 4, 3), lambda: iter(chunks)), ("arr_1", np.int64, (13,), lambda: iter([labels]))])
    np.savez(theirs, arr_0=np.concatenate(chunks), arr_1=labels)
    assert ours.getvalue() == theirs.getvalue()


def test_streamed_npz_refuses_a_short_array():
    with pytest.raises(AssertionError, match="wrote 2 rows"):
        write_npz_streamed(io.BytesIO(), [("arr_0", np.uint8, (3, 1), lambda: iter([np.zeros((2, 1), np.uint8)]))])
