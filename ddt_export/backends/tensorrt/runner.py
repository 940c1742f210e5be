"""The TensorRT runner: one CFG batch size's CUDA buffers, execution contexts, stream and CUDA graphs.

The runner's buffers are CUDA torch tensors, so the shared sampling loop's in-place
guidance and Euler update run on the GPU, and torch's allocator owns the memory. The
encoder's output s is the decoder's input tensor: one buffer bound to both engines, never
copied. Each engine call is `execute_async_v3` on the runner's stream; nothing in the loop
waits on the host (work the loop enqueues on another stream is ordered by stream waits,
not by synchronising). `Pipeline` runs the loop on the runner's stream, so all of it is
one stream. With CUDA graphs (the default; DDT_TRT_CUDA_GRAPHS=0 turns them off) each
engine call is captured once per batch size and replayed: an encoder+decoder step is two
graph launches, a decoder-only step one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...dtypes import torch_dtype
from ...errors import DDTError
from ..buffers import Rows, allocate, row_sets


class CudaStream:
    """The torch CUDA stream a runner enqueues on, and how the caller's stream is ordered around it."""

    def __init__(self, device):
        import torch

        self.device = device
        self.stream = torch.cuda.Stream(device)

    @property
    def handle(self) -> int:
        return self.stream.cuda_stream

    def scope(self):
        """Make this the current stream (torch ops inside run on it)."""
        import torch

        return torch.cuda.stream(self.stream)

    def join(self):
        """Order this stream after the caller's current stream; returns that stream (or None)."""
        import torch

        current = torch.cuda.current_stream(self.device)
        if current == self.stream:
            return None
        self.stream.wait_stream(current)  # device-side wait: no host synchronisation
        return current

    def release(self, caller) -> None:
        if caller is not None:
            caller.wait_stream(self.stream)

    def synchronize(self) -> None:
        """Wait for everything queued on the device (set-up and timing only, never in the loop)."""
        import torch

        torch.cuda.synchronize(self.device)


class TensorRTRunner:
    """x (2B,C,H,W) f32, t (2B,) f32, y (2B,) i64 -> encoder -> s (2B,N,D) -> decoder (with x) -> v (2B,C,H,W) f32.

    Made by `TensorRTBackend.runner` (backend.py), whose engines, roles, device and profile it uses.
    """

    def __init__(self, backend, batch: int):
        import torch

        self._backend, dev = backend, backend.device.torch_device
        self.batch = batch
        # s: written by the encoder, read by the decoder (one CUDA buffer bound to both engines)
        self.x, self.t, self.y, self.s, self.v = allocate(
            backend.encoder_spec, backend.decoder_spec, batch, lambda shape, dtype: torch.zeros(shape, dtype=torch_dtype(dtype), device=dev))
        self._stream = backend.device.stream()
        self.stream = self._stream.stream  # Pipeline runs the loop on it
        # (encoder, decoder) execution contexts per row set, bound to views of the same buffers. Engines whose
        # profile cannot take B rows run the full batch for both row sets.
        self._ctx: dict[bool, tuple[Any, Any]] = row_sets(batch, self._contexts, half=batch // 2 >= backend.cfg_batch.min)
        self._graphs: dict[int, Any] = {}  # id(context) -> its CUDA graph
        self._stream.synchronize()  # once, at set-up: the zero fills above ran on another stream
        if backend.cuda_graphs:
            self._capture()

    def _contexts(self, rows: Rows) -> tuple:
        r, be = self._backend.roles, self._backend
        enc, dec = be.encoder.create_execution_context(), be.decoder.create_execution_context()
        if enc is None or dec is None:
            raise DDTError("TensorRT could not create an execution context (out of GPU memory?); close other GPU work or lower the batch")
        x, t, y, s, v = (rows.of(a) for a in (self.x, self.t, self.y, self.s, self.v))
        self._bind(enc, inputs={r.enc_x: x, r.enc_t: t, r.enc_y: y}, outputs={r.enc_s: s})
        self._bind(dec, inputs={r.dec_x: x, r.dec_s: s}, outputs={r.dec_v: v})
        return enc, dec

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

        contexts = {id(ctx): ctx for pair in self._ctx.values() for ctx in pair}  # a context shared by both row sets is captured once
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

    def _call(self, ctx) -> None:
        caller = self._stream.join()
        graph = self._graphs.get(id(ctx))
        if graph is not None:
            with self._stream.scope():
                graph.replay()  # launches on the current (= the runner's) stream
        else:
            self._enqueue(ctx)
        self._stream.release(caller)

    def encode(self, cond_only: bool = False) -> None:
        self._call(self._ctx[cond_only][0])

    def decode(self, cond_only: bool = False) -> None:
        self._call(self._ctx[cond_only][1])

    def array(self, a: np.ndarray):
        import torch

        return torch.from_numpy(np.ascontiguousarray(a)).to(self._backend.device.torch_device)

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
        self._stream.synchronize()
