"""Tensor roles by position in the manifest's graph specs (names come from the manifest).

encoder: inputs (latent x, time t, label y) -> output (state s)
decoder: inputs (latent x, state s)         -> output (velocity v)
"""

from __future__ import annotations

from dataclasses import dataclass

from ..manifest import Manifest


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
    def of(cls, manifest: Manifest) -> "Roles":
        enc, dec = manifest.graph("encoder"), manifest.graph("decoder")
        (ex, et, ey), (es,) = [t.name for t in enc.inputs], [t.name for t in enc.outputs]
        (dx, ds), (dv,) = [t.name for t in dec.inputs], [t.name for t in dec.outputs]
        return cls(ex, et, ey, es, dx, ds, dv)
