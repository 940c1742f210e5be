"""The TensorRT backend: a build's engines loaded and checked against this GPU, and one runner per CFG batch size.

Engines run only on the TensorRT version and compute capability they were built with: the
backend compares both with the manifest's record and refuses others with the command that
rebuilds them here. One runner per CFG batch size is kept, so repeated `generate` calls reuse
buffers, execution contexts and CUDA graphs. TensorRT is imported when a backend is opened,
never at import time.
"""

from __future__ import annotations

import os
from typing import ClassVar

from ...errors import DDTError
from ...manifest import Manifest
from ...manifest_schema import Engines
from ..buffers import Roles
from .runner import TensorRTRunner


def _trt_dtypes(trt) -> dict:
    return {trt.DataType.FLOAT: "float32", trt.DataType.HALF: "float16", trt.DataType.BF16: "bfloat16",
            trt.DataType.INT64: "int64", trt.DataType.INT32: "int32"}


class TensorRTBackend:
    name = "tensorrt"
    OPTIONS: ClassVar[dict[str, str]] = {"cuda_graphs": "capture each engine call as a CUDA graph (default on; DDT_TRT_CUDA_GRAPHS=0 turns it off)"}

    def __init__(self, manifest: Manifest, *, cuda_graphs: bool | None = None):
        from .engines import rebuild_command
        from .env import Device, require

        self.manifest, self.precision = manifest, manifest.precision
        self.encoder_spec, self.decoder_spec = manifest.graph("encoder"), manifest.graph("decoder")
        self.roles = Roles.of(self.encoder_spec, self.decoder_spec)
        eng = manifest.doc.engines
        if eng is None:
            raise DDTError(f"{manifest.root} has no TensorRT engines; build them on this GPU machine: {rebuild_command(manifest.root)}")
        require("--backend tensorrt", ", or run with --backend onnxruntime")
        import tensorrt as trt

        self.device = Device.here()  # the GPU its runners' buffers and streams live on
        rebuild = rebuild_command(manifest.root, eng.max_batch, eng.builder_optimization_level)
        self._check_device(eng, rebuild)
        self.cuda_graphs = (os.environ.get("DDT_TRT_CUDA_GRAPHS", "1") != "0") if cuda_graphs is None else cuda_graphs
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.encoder = self._load(trt, "encoder", eng, rebuild)
        self.decoder = self._load(trt, "decoder", eng, rebuild)
        self.cfg_batch, self.opt_level = eng.cfg_batch, eng.builder_optimization_level
        self._runners: dict[int, TensorRTRunner] = {}

    def _check_device(self, eng: Engines, rebuild: str) -> None:
        here, root = self.device, self.manifest.root
        if here.tensorrt != eng.tensorrt:
            raise DDTError(f"{root}: engines were built with TensorRT {eng.tensorrt}, this is TensorRT {here.tensorrt}; rebuild them here: {rebuild}")
        if here.compute_capability != eng.compute_capability:
            raise DDTError(f"{root}: engines were built for compute capability {eng.compute_capability} ({eng.gpu}), this GPU is "
                           f"{here.compute_capability} ({here.name}); rebuild them here: {rebuild}")

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
