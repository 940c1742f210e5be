"""onnxruntime: the default backend, CPU anywhere and CUDA where onnxruntime-gpu is installed.

Buffers are numpy arrays bound once through IOBinding (zero-copy on the CPU); the state s
is one buffer bound as the encoder's output and the decoder's input, so sharing it costs
nothing.
"""

from __future__ import annotations

import numpy as np

from ..errors import DDTError
from ..manifest import Manifest
from .roles import Roles, host_buffers



def session(path, providers: list[str], threads: int | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    # Idle pool threads block instead of spinning: the encoder's and the decoder's sessions each own a
    # pool, and a spinning one steals the cores the other is computing on (and other processes' cores).
    # On a loaded 2-core machine this took a B/2 encoder call from 2.3 s to 1.4 s; idle, it costs a
    # thread wake-up per parallel op (~1% of a call). See benchmarks/latency.md.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), opts, providers=providers)
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
        raise DDTError(f"{path}: onnxruntime cannot load it ({str(e).splitlines()[0][:200]}); rebuild the folder") from None


def default_providers() -> list:
    """CPU, CUDA or TensorRT providers: $DDT_ORT_PROVIDERS (e.g. tensorrt,cuda,cpu), else CUDA where present, then CPU."""
    from .ort_providers import providers

    return providers()


class OnnxRuntimeRunner:
    def __init__(self, backend: "OnnxRuntimeBackend", batch: int):
        r = backend.roles
        self.x, self.t, self.y, self.s, self.v = host_buffers(backend.manifest, batch, "onnxruntime")
        self._enc, self._dec = backend.encoder, backend.decoder
        self._enc_io, self._dec_io = self._enc.io_binding(), self._dec.io_binding()
        for io, name, a in ((self._enc_io, r.enc_x, self.x), (self._enc_io, r.enc_t, self.t), (self._enc_io, r.enc_y, self.y),
                            (self._dec_io, r.dec_x, self.x), (self._dec_io, r.dec_s, self.s)):
            io.bind_input(name, "cpu", 0, a.dtype, list(a.shape), a.ctypes.data)
        self._enc_io.bind_output(r.enc_s, "cpu", 0, self.s.dtype, list(self.s.shape), self.s.ctypes.data)
        self._dec_io.bind_output(r.dec_v, "cpu", 0, self.v.dtype, list(self.v.shape), self.v.ctypes.data)

    def encode(self) -> None:
        self._enc.run_with_iobinding(self._enc_io)

    def decode(self) -> None:
        self._dec.run_with_iobinding(self._dec_io)

    def array(self, a: np.ndarray) -> np.ndarray:
        return a

    def host(self, a) -> np.ndarray:
        return np.asarray(a, dtype=np.float32)


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, manifest: Manifest, providers: list[str] | None = None, threads: int | None = None):
        self.manifest, self.roles = manifest, Roles.of(manifest)
        self.providers = providers or default_providers()
        self.encoder = session(manifest.path(manifest.graph("encoder").file), self.providers, threads)
        self.decoder = session(manifest.path(manifest.graph("decoder").file), self.providers, threads)

    def runner(self, batch: int) -> OnnxRuntimeRunner:
        return OnnxRuntimeRunner(self, batch)
