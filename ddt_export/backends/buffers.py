"""The buffers every runner binds: tensor roles by position in the graph specs, one allocator, the row sets, the CPU runner base.

encoder: inputs (latent x, time t, label y) -> output (state s)
decoder: inputs (latent x, state s)         -> output (velocity v)

Every buffer holds the CFG batch [uncond; cond] (2B rows). A call runs either every row, or the
conditional half alone (rows B:2B, where guidance is off: `cond_only`); runners bind both row
sets once, over views of the same buffers (`row_sets`).

Names, shapes and dtypes come from the specs (the manifest's, or the model's own for the torch
backend); nothing here spells a tensor name.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import numpy as np

from ..dtypes import NUMPY
from ..errors import DDTError
from ..graphs import GraphSpec, TensorSpec


@dataclass(frozen=True)
class Roles:
    enc_x: str
    enc_t: str
    enc_y: str
    enc_s: str
    dec_x: str
    dec_s: str
    dec_v: str

    @classmethod
    def of(cls, encoder: GraphSpec, decoder: GraphSpec) -> "Roles":
        (ex, et, ey), (es,) = [t.name for t in encoder.inputs], [t.name for t in encoder.outputs]
        (dx, ds), (dv,) = [t.name for t in decoder.inputs], [t.name for t in decoder.outputs]
        return cls(ex, et, ey, es, dx, ds, dv)


T = TypeVar("T")


@dataclass(frozen=True)
class Rows:
    """The rows of the CFG batch one call computes: every row (0:2B), or the conditional half alone (B:2B)."""

    start: int
    stop: int

    @property
    def count(self) -> int:
        return self.stop - self.start

    def of(self, a):
        """`a`'s rows (a view of a numpy array or torch tensor, never a copy)."""
        return a[self.start : self.stop]


def rows(batch: int, cond_only: bool) -> Rows:
    """The rows a call at CFG batch `batch` computes: the conditional half (rows B:2B) with `cond_only`, else all."""
    return Rows(batch // 2 if cond_only else 0, batch)


def row_sets(batch: int, bind: Callable[[Rows], T], half: bool = True) -> dict[bool, T]:
    """`bind(rows)` once per row set, keyed by `cond_only` as runners' encode()/decode() take it.

    Without `half` (engines whose profile cannot take B rows) the conditional-half calls reuse every row's
    bindings: they compute the unconditional rows too, whose results are then simply unused.
    """
    full = bind(rows(batch, False))
    return {False: full, True: bind(rows(batch, True)) if half else full}


def allocate(encoder: GraphSpec, decoder: GraphSpec, batch: int, alloc: Callable[[tuple, str], Any]) -> tuple:
    """(x, t, y, s, v) at a CFG batch, each made by `alloc(shape, dtype name)`; x and s are shared by both graphs."""
    r = Roles.of(encoder, decoder)
    enc = {t.name: t for t in encoder.inputs + encoder.outputs}
    dec = {t.name: t for t in decoder.inputs + decoder.outputs}

    def make(t: TensorSpec):
        return alloc(t.concrete(batch), t.dtype)

    return make(enc[r.enc_x]), make(enc[r.enc_t]), make(enc[r.enc_y]), make(enc[r.enc_s]), make(dec[r.dec_v])


def host_buffers(encoder: GraphSpec, decoder: GraphSpec, batch: int, runtime: str, half_as_float32: bool = False) -> tuple:
    """`allocate` with numpy arrays: CPU runtimes bind these once and read and write them in place.

    `half_as_float32`: fp16/bf16 tensors held in fp32 (graphs whose half storage is emulated).
    """

    def alloc(shape: tuple, dtype: str) -> np.ndarray:
        if half_as_float32 and dtype in ("float16", "bfloat16"):
            dtype = "float32"
        if dtype not in NUMPY:
            raise DDTError(f"{runtime} on numpy cannot bind {dtype} tensors; use an fp32 or fp16 build (bf16 builds run on TensorRT)")
        return np.zeros(shape, NUMPY[dtype])

    return allocate(encoder, decoder, batch, alloc)


class HostRunner:
    """What every CPU runner shares: numpy buffers, so host transfers are identities and there is no stream."""

    def array(self, a: np.ndarray) -> np.ndarray:
        return a

    def host(self, a) -> np.ndarray:
        if hasattr(a, "detach"):  # a torch tensor (the torch backend's s)
            return a.detach().float().numpy()
        return np.asarray(a, dtype=np.float32)

    def scope(self):
        return nullcontext()

    def synchronize(self) -> None:
        pass
