"""labels.py: the one integer grammar of labels, step lists and seeds, at its edges (the CLI rows are in tests/cli/test_bad_input.py)."""

from __future__ import annotations

import numpy as np
import pytest

from ddt_export.errors import DDTError
from ddt_export.labels import MAX_SEED, check_seed, whole_list


@pytest.mark.parametrize("text,want", [("1,7", [1, 7]), (" 1, 7 ", [1, 7]), ("", []), (None, None), ("0", [0]), ("-1", [-1]),
                                       ("007", [7])])
def test_accepted(text, want):
    assert whole_list(text, "--labels") == want


@pytest.mark.parametrize("text", ["1_0", "\uff11", "\u0661", "+1", "1.0", "1e3", "1,,2", "1,", ",1", "1 2", "0x10", "\u00b2",
                                  "9" * 41, "1\n"])
def test_refused(text):
    with pytest.raises(DDTError, match="--labels"):
        whole_list(text, "--labels")


@pytest.mark.parametrize("seed", [0, 1, MAX_SEED, "18446744073709551615", np.uint64(MAX_SEED), np.int64(5)])
def test_seeds_in_range(seed):
    assert check_seed(seed) == int(seed)


@pytest.mark.parametrize("seed", [-1, MAX_SEED + 1, "18446744073709551616", "-1", "1_0", 1.0, True, None])
def test_seeds_out_of_range_or_not_whole(seed):
    with pytest.raises(DDTError, match="--seed must be a whole number"):
        check_seed(seed)


def test_the_api_takes_the_whole_seed_range_and_no_more(built):
    from ddt_export import Pipeline

    pipe = Pipeline.load(built, "onnxruntime")
    top = pipe.plan([1], seed=MAX_SEED, num_steps=2)
    assert np.isfinite(top.noise).all()
    assert not np.array_equal(top.noise, pipe.plan([1], seed=0, num_steps=2).noise)
    with pytest.raises(DDTError, match="seed must be a whole number from 0 to 2\\^64 - 1"):
        pipe.plan([1], seed=-1, num_steps=2)  # torch would take -1 as 2^64 - 1
