"""TensorRT: the encoder and decoder engines on one CUDA stream, buffers allocated once.

The runner's buffers are CUDA torch tensors, so the shared sampling loop's in-place
guidance and Euler update run on the GPU, and torch's allocator owns the memory. The
encoder's output s is the decoder's input tensor: one buffer bound to both engines, never
copied. Each engine call is `execute_async_v3` on the runner's stream; nothing in the loop
waits on the host (work the loop enqueues on another stream is ordered by stream waits,
not by synchronising). `Pipeline` runs the loop on the runner's stream, so all of it is
one stream. With CUDA graphs (the default; DDT_TRT_CUDA_GRAPHS=0 turns them off) each
engine call is captured once per batch size and replayed: an encoder+decoder step is two
graph launches, a decoder-only step one.

One runner per CFG batch size is kept, so repeated `generate` calls reuse buffers,
execution contexts and graphs.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from typing import Any

import numpy as np

from ...dtypes import torch_dtype
from ...errors import DDTError
from ...manifest import Manifest
from ...manifest_schema import Engines
from ..buffers import Roles, allocate


def _trt_dtypes(trt) -> dict:
    return {trt.DataType.FLOAT: "float32", trt.DataType.HALF: "float16", trt.DataType.BF16: "bfloat16",
            trt.DataType.INT64: "int64", trt.DataType.INT32: "int32"}


class Stream:
    """The stream a runner enqueues on. On "cuda" a torch CUDA stream; on "cpu" (tests only:
    a stand-in TensorRT reading host pointers) handle 0 and no ordering to do."""

    def __init__(self, device):
        import torch

        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.stream = torch.cuda.Stream(self.device) if self.cuda else None

    @property
    def handle(self) -> int:
        return self.stream.cuda_stream if self.cuda else 0

    def scope(self):
        """Make this the current stream (torch ops inside run on it)."""
        import torch

        return torch.cuda.stream(self.stream) if self.cuda else nullcontext()

    def join(self):
        """Order this stream after the caller's current stream; returns that stream (or None)."""
        import torch

        if not self.cuda:
            return None
        current = torch.cuda.current_stream(self.device)
        if current == self.stream:
            return None
        self.stream.wait_stream(current)  # device-side wait: no host synchronisation
        return current

    def release(self, caller) -> None:
        if caller is not None:
            caller.wait_stream(self.stream)


class TensorRTRunner:
    """x (2B,C,H,W) f32, t (2B,) f32, y (2B,) i64 -> encoder -> s (2B,N,D) -> decoder (with x) -> v (2B,C,H,W) f32."""

    def __init__(self, backend: "TensorRTBackend", batch: int):
        import torch

        self._backend, r = backend, backend.roles
        dev = backend.device
        self.batch = batch
        # s: written by the encoder, read by the decoder (one CUDA buffer bound to both engines)
        self.x, self.t, self.y, self.s, self.v = allocate(
            backend.encoder_spec, backend.decoder_spec, batch, lambda shape, dtype: torch.zeros(shape, dtype=torch_dtype(dtype), device=dev))
        self._stream = Stream(dev)
        self.stream = self._stream.stream  # Pipeline runs the loop on it
        # An execution context per graph and row set: every row, and the conditional half (rows B:2B, guidance off),
        # bound to slices of the same buffers (views, never copies). Engines whose profile cannot take B rows run the
        # full batch for both (the unconditional rows' results are then simply unused).
        self._ctx: dict[tuple[str, bool], Any] = {}
        half = batch // 2 >= backend.cfg_batch.min
        for cond_only in (False, True) if half else (False,):
            lo = batch // 2 if cond_only else 0
            enc, dec = backend.encoder.create_execution_context(), backend.decoder.create_execution_context()
            if enc is None or dec is None:
                raise DDTError("TensorRT could not create an execution context (out of GPU memory?); close other GPU work or lower the batch")
            self._bind(enc, inputs={r.enc_x: self.x[lo:], r.enc_t: self.t[lo:], r.enc_y: self.y[lo:]}, outputs={r.enc_s: self.s[lo:]})
            self._bind(dec, inputs={r.dec_x: self.x[lo:], r.dec_s: self.s[lo:]}, outputs={r.dec_v: self.v[lo:]})
            self._ctx[("encode", cond_only)], self._ctx[("decode", cond_only)] = enc, dec
        if not half:
            self._ctx[("encode", True)], self._ctx[("decode", True)] = self._ctx[("encode", False)], self._ctx[("decode", False)]
        self._graphs: dict[int, Any] = {}  # id(context) -> its CUDA graph
        if self._stream.cuda:
            torch.cuda.synchronize(self._stream.device)  # once, at set-up: the zero fills above ran on another stream
            if backend.cuda_graphs:
                self._capture()

    @staticmethod
    def _bind(ctx, inputs: dict, outputs: dict) -> None:
        for name, tensor in inputs.items():
            if not ctx.set_input_shape(name, tuple(tensor.shape)):
                raise DDTError(f"TensorRT refused shape {tuple(tensor.shape)} for input {name}; rebuild the engines for this batch")
        for name, tensor in {**inputs, **outputs}.items():
            if not ctx.set_tensor_address(name, tensor.data_ptr()):
                raise DDTError(f"TensorRT refused the buffer for {name}; rebuild the engines")
        missing = ctx.infer_shapes()
        if missing:
            raise DDTError(f"TensorRT engine inputs without shapes: {', '.join(missing)}; rebuild the engines")
        for name, tensor in outputs.items():
            if tuple(ctx.get_tensor_shape(name)) != tuple(tensor.shape):
                raise DDTError(f"engine output {name} has shape {tuple(ctx.get_tensor_shape(name))}, the manifest says {tuple(tensor.shape)}; rebuild the engines")

    def _capture(self) -> None:
        """One CUDA graph per engine call and row set, captured after one plain run (TensorRT allocates lazily on the first)."""
        import torch

        contexts = {id(ctx): ctx for ctx in self._ctx.values()}  # a context shared by both row sets is captured once
        with self._stream.scope():
            for ctx in contexts.values():
                self._enqueue(ctx)
        self._stream.stream.synchronize()
        for key, ctx in contexts.items():
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=self._stream.stream, capture_error_mode="thread_local"):
                self._enqueue(ctx)
            self._graphs[key] = graph

    def _enqueue(self, ctx) -> None:
        if not ctx.execute_async_v3(self._stream.handle):
            raise RuntimeError("TensorRT execute_async_v3 failed (see TensorRT's log above)")

    def _call(self, key: tuple[str, bool]) -> None:
        caller = self._stream.join()
        ctx = self._ctx[key]
        graph = self._graphs.get(id(ctx))
        if graph is not None:
            with self._stream.scope():
                graph.replay()  # launches on the current (= the runner's) stream
        else:
            self._enqueue(ctx)
        self._stream.release(caller)

    def encode(self, cond_only: bool = False) -> None:
        self._call(("encode", cond_only))

    def decode(self, cond_only: bool = False) -> None:
        self._call(("decode", cond_only))

    def array(self, a: np.ndarray):
        import torch

        return torch.from_numpy(np.ascontiguousarray(a)).to(self._backend.device)

    def host(self, a) -> np.ndarray:
        if not hasattr(a, "detach"):
            return np.asarray(a, np.float32)
        self._stream.join()  # after whatever the caller's stream still has queued for `a`
        with self._stream.scope():
            return a.detach().float().cpu().numpy()  # the copy to host waits for this stream

    def scope(self):
        """Run the sampling loop's own work on this runner's stream (one stream for everything)."""
        return self._stream.scope()

    def synchronize(self) -> None:
        """Wait for everything queued on the GPU (for timing: encode()/decode() only enqueue)."""
        if self._stream.cuda:
            import torch

            torch.cuda.synchronize(self._stream.device)


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, manifest: Manifest, *, cuda_graphs: bool | None = None, device: str = "cuda"):
        from .engines import rebuild_command
        from .env import Device, require

        self.manifest, self.precision = manifest, manifest.precision
        self.encoder_spec, self.decoder_spec = manifest.graph("encoder"), manifest.graph("decoder")
        self.roles = Roles.of(self.encoder_spec, self.decoder_spec)
        eng = manifest.doc.engines
        if eng is None:
            raise DDTError(f"{manifest.root} has no TensorRT engines; build them on this GPU machine: {rebuild_command(manifest.root)}")
        self.device = device
        if device == "cuda":
            require("--backend tensorrt", ", or run with --backend onnxruntime")
        import tensorrt as trt

        here = Device.here() if device == "cuda" else Device("cpu", eng.compute_capability, trt.__version__)
        rebuild = rebuild_command(manifest.root, eng.max_batch, eng.builder_optimization_level)
        if here.tensorrt != eng.tensorrt:
            raise DDTError(f"{manifest.root}: engines were built with TensorRT {eng.tensorrt}, this is TensorRT {here.tensorrt}; rebuild them here: {rebuild}")
        if here.compute_capability != eng.compute_capability:
            raise DDTError(f"{manifest.root}: engines were built for compute capability {eng.compute_capability} ({eng.gpu}), this GPU is "
                           f"{here.compute_capability} ({here.name}); rebuild them here: {rebuild}")
        self.cuda_graphs = (os.environ.get("DDT_TRT_CUDA_GRAPHS", "1") != "0") if cuda_graphs is None else cuda_graphs
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.encoder = self._load(trt, "encoder", eng, rebuild)
        self.decoder = self._load(trt, "decoder", eng, rebuild)
        self.cfg_batch, self.opt_level = eng.cfg_batch, eng.builder_optimization_level
        self._runners: dict[int, TensorRTRunner] = {}

    def _load(self, trt, name: str, eng: Engines, rebuild: str):
        path = self.manifest.path(eng.files[name])
        engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise DDTError(f"{path}: TensorRT cannot load this engine (another TensorRT, GPU or a damaged file); rebuild them here: {rebuild}")
        spec = self.manifest.graph(name)
        want = {t.name: (t.dtype, trt.TensorIOMode.INPUT) for t in spec.inputs} | {t.name: (t.dtype, trt.TensorIOMode.OUTPUT) for t in spec.outputs}
        dtypes = _trt_dtypes(trt)
        got = {}
        for i in range(engine.num_io_tensors):
            tname = engine.get_tensor_name(i)
            got[tname] = (dtypes.get(engine.get_tensor_dtype(tname), str(engine.get_tensor_dtype(tname))), engine.get_tensor_mode(tname))
        if got != want:
            raise DDTError(f"{path}: engine tensors {sorted(got)} do not match the manifest's {name} graph {sorted(want)}; rebuild them here: {rebuild}")
        return engine

    def runner(self, batch: int) -> TensorRTRunner:
        lo, hi = self.cfg_batch.min, self.cfg_batch.max
        if not lo <= batch <= hi:
            from .engines import rebuild_command

            raise DDTError(f"the engines take {lo // 2} to {hi // 2} samples per call (CFG batch {lo}..{hi}), asked for {batch // 2}; "
                           f"use fewer samples or rebuild with a larger batch: {rebuild_command(self.manifest.root, max(batch // 2, 1), self.opt_level)}")
        if batch not in self._runners:
            self._runners[batch] = TensorRTRunner(self, batch)
        return self._runners[batch]
