"""PyTorch eager: the reference every other backend is measured against."""

from __future__ import annotations

from typing import ClassVar

import torch

from ..graphs import decoder_spec, encoder_spec
from ..manifest import Manifest
from ..model import DDT
from .buffers import HostRunner, host_buffers, rows


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
        r = rows(len(self.x), cond_only)
        with self._autocast():
            s = self.model.encode(r.of(self._x), r.of(self._t), r.of(self._y))
        if r.start == 0:
            self.s = s
        else:  # the unconditional rows keep whatever they held: no step before the next recompute reads them
            if self.s is None:
                self.s = torch.zeros((len(self.x), *s.shape[1:]), dtype=s.dtype)
            r.of(self.s).copy_(s)

    @torch.inference_mode()
    def decode(self, cond_only: bool = False) -> None:
        r = rows(len(self.x), cond_only)
        with self._autocast():
            r.of(self._v).copy_(self.model.decode(r.of(self._x), r.of(self.s)))


class TorchBackend:
    name = "torch"
    OPTIONS: ClassVar[dict[str, str]] = {"threads": "torch's intra-op threads (torch.set_num_threads: the whole process's)"}

    def __init__(self, model: DDT, autocast: torch.dtype | None = None, threads: int | None = None):
        if threads:
            torch.set_num_threads(threads)
        self.model = model.eval()
        self.autocast = autocast  # e.g. torch.bfloat16: what users run today on AMX CPUs
        self.precision = "bf16" if autocast == torch.bfloat16 else "fp32"

    @classmethod
    def from_build(cls, manifest: Manifest, threads: int | None = None) -> "TorchBackend":
        if threads:
            torch.set_num_threads(threads)  # before the weights load
        return cls(manifest.load_model())

    def runner(self, batch: int) -> TorchRunner:
        return TorchRunner(self.model, batch, self.autocast)
