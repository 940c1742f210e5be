"""PyTorch eager: the reference every other backend is measured against."""

from __future__ import annotations

import numpy as np
import torch

from ..manifest import Manifest
from ..model import DDT


class TorchRunner:
    """numpy buffers shared with torch tensors (torch.from_numpy), so the loop sees arrays."""

    def __init__(self, model: DDT, batch: int, dtype: torch.dtype | None = None):
        cfg = model.cfg
        self.model, self.dtype = model, dtype
        self.x = np.zeros((batch, *cfg.latent_shape), np.float32)
        self.t = np.zeros((batch,), np.float32)
        self.y = np.zeros((batch,), np.int64)
        self.v = np.zeros((batch, *cfg.latent_shape), np.float32)
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

    def array(self, a: np.ndarray) -> np.ndarray:
        return a

    def host(self, a) -> np.ndarray:
        return a.float().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


class TorchBackend:
    name = "torch"

    def __init__(self, model: DDT, autocast: torch.dtype | None = None):
        self.model = model.eval()
        self.autocast = autocast  # e.g. torch.bfloat16: what users run today on AMX CPUs

    @classmethod
    def from_build(cls, manifest: Manifest) -> "TorchBackend":
        from ..official import load_weights, read_weights

        path = manifest.path(manifest.data["weights_file"])
        model = DDT(manifest.arch)
        return cls(load_weights(model, read_weights(path), str(path)))

    def runner(self, batch: int) -> TorchRunner:
        return TorchRunner(self.model, batch, self.autocast)
