"""Backend options: each backend declares what it takes, `open_backend` passes those and refuses the rest in one line;
and the row sets every runner binds (buffers.rows / row_sets)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from ddt_export.backends import NAMES, backend_class, open_backend
from ddt_export.backends.buffers import row_sets, rows
from ddt_export.errors import DDTError
from ddt_export.manifest import read


@pytest.mark.parametrize("name", NAMES)
def test_every_declared_option_is_a_constructor_keyword(name):
    cls = backend_class(name)
    assert cls.OPTIONS and all(isinstance(what, str) and what for what in cls.OPTIONS.values())
    for make in (cls.__init__, cls.from_build) if name == "torch" else (cls.__init__,):
        assert set(cls.OPTIONS) <= set(inspect.signature(make).parameters), (name, make)


@pytest.mark.parametrize("name", ["torch", "onnxruntime"])
def test_precision_is_refused_by_backends_that_run_the_builds_own(built, name):
    with pytest.raises(DDTError) as e:
        open_backend(name, read(built), precision="fp32")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"the {name} backend takes no `precision` option (its options: threads: ")


def test_an_unknown_option_is_refused_by_name(built):
    with pytest.raises(DDTError, match="the onnxruntime backend takes no `thread` option"):
        open_backend("onnxruntime", read(built), thread=1)


def test_none_is_the_backends_default_not_an_option(built):
    """bench.precision passes precision=None to onnxruntime rows: None means not given."""
    assert open_backend("onnxruntime", read(built), precision=None, threads=None).name == "onnxruntime"


def test_threads_reach_the_backends_that_take_them(built):
    before = torch.get_num_threads()
    try:
        open_backend("torch", read(built), threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    be = open_backend("onnxruntime", read(built), threads=1)
    assert be.encoder.get_session_options().intra_op_num_threads == 1


def test_rows_are_every_row_or_the_conditional_half():
    a = np.arange(6)
    assert rows(6, False).of(a).tolist() == [0, 1, 2, 3, 4, 5] and rows(6, True).of(a).tolist() == [3, 4, 5]
    assert rows(6, True).count == 3 and np.shares_memory(rows(6, True).of(a), a)  # a view, never a copy
    bound = []
    sets = row_sets(4, lambda r: bound.append(r) or (r.start, r.stop))
    assert sets == {False: (0, 4), True: (2, 4)} and len(bound) == 2
    full_only = row_sets(4, lambda r: object(), half=False)  # engines whose profile cannot take B rows
    assert full_only[True] is full_only[False]
