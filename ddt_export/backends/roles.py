"""Tensor roles by position in the manifest's graph specs (names come from the manifest).

encoder: inputs (latent x, time t, label y) -> output (state s)
decoder: inputs (latent x, state s)         -> output (velocity v)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DDTError
from ..manifest import Manifest

NUMPY_DTYPES = {"float32": np.float32, "float16": np.float16, "int64": np.int64}


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


def host_buffers(manifest: Manifest, batch: int, runtime: str) -> tuple[np.ndarray, ...]:
    """(x, t, y, s, v) as numpy arrays of the manifest's shapes and dtypes at a CFG batch.

    CPU runtimes bind these once and read and write them in place; s is the one buffer both
    graphs share.
    """
    r = Roles.of(manifest)
    enc, dec = manifest.graph("encoder"), manifest.graph("decoder")
    specs = {**{("enc", t.name): t for t in enc.inputs + enc.outputs}, **{("dec", t.name): t for t in dec.inputs + dec.outputs}}
    if any(t.dtype not in NUMPY_DTYPES for t in specs.values()):
        raise DDTError(f"{manifest.root}: {runtime} on numpy cannot bind {manifest.precision} tensors; use an fp32 or fp16 build")

    def alloc(graph: str, name: str) -> np.ndarray:
        t = specs[(graph, name)]
        return np.zeros(t.concrete(batch), NUMPY_DTYPES[t.dtype])

    return alloc("enc", r.enc_x), alloc("enc", r.enc_t), alloc("enc", r.enc_y), alloc("enc", r.enc_s), alloc("dec", r.dec_v)
