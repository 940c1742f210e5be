"""PyTorch eager: the reference every other backend is measured against."""

from __future__ import annotations

import numpy as np
import torch

from ..graphs import decoder_spec, encoder_spec
from ..manifest import Manifest
from ..model import DDT
from .buffers import HostRunner, host_buffers


class TorchRunner(HostRunner):
    """numpy buffers shared with torch tensors (torch.from_numpy), so the loop sees arrays; s is the model's own tensor."""

    def __init__(self, model: DDT, batch: int, dtype: torch.dtype | None = None):
        self.model, self.dtype = model, dtype
        self.x, self.t, self.y, _, self.v = host_buffers(encoder_spec(model.cfg), decoder_spec(model.cfg), batch, "torch")
        self._x, self._t, self._y, self._v = map(torch.from_numpy, (self.x, self.t, self.y, self.v))
        self.s: torch.Tensor | None = None

    def _autocast(self):
        return torch.autocast("cpu", dtype=self.dtype, enabled=self.dtype is not None)

    @torch.inference_mode()
    def encode(self, cond_only: bool = False) -> None:
        lo = len(self.x) // 2 if cond_only else 0  # cond_only: rows B:2B (guidance off)
        with self._autocast():
            s = self.model.encode(self._x[lo:], self._t[lo:], self._y[lo:])
        if lo == 0:
            self.s = s
        else:  # the unconditional rows keep whatever they held: no step before the next recompute reads them
            if self.s is None:
                self.s = torch.zeros((len(self.x), *s.shape[1:]), dtype=s.dtype)
            self.s[lo:].copy_(s)

    @torch.inference_mode()
    def decode(self, cond_only: bool = False) -> None:
        lo = len(self.x) // 2 if cond_only else 0
        with self._autocast():
            self._v[lo:].copy_(self.model.decode(self._x[lo:], self.s[lo:]))


class TorchBackend:
    name = "torch"

    def __init__(self, model: DDT, autocast: torch.dtype | None = None):
        self.model = model.eval()
        self.autocast = autocast  # e.g. torch.bfloat16: what users run today on AMX CPUs
        self.precision = "bf16" if autocast == torch.bfloat16 else "fp32"

    @classmethod
    def from_build(cls, manifest: Manifest) -> "TorchBackend":
        return cls(manifest.load_model())

    def runner(self, batch: int) -> TorchRunner:
        return TorchRunner(self.model, batch, self.autocast)
