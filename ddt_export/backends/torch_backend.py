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
    def encode(self) -> None:
        with self._autocast():
            self.s = self.model.encode(self._x, self._t, self._y)

    @torch.inference_mode()
    def decode(self) -> None:
        with self._autocast():
            self._v.copy_(self.model.decode(self._x, self.s))


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
