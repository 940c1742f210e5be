"""OpenVINO on the CPU: the build's ONNX graphs compiled for bf16 where the CPU has bf16 hardware.

OpenVINO reads the fp32 ONNX graphs as they are and, with its inference-precision hint,
runs matmuls in bf16 (AVX512-BF16 or AMX) with fp32 inputs and outputs, the way PyTorch's
bf16 autocast does; on other CPUs it runs fp32. Each runner compiles the graphs for its
static CFG batch (OpenVINO plans memory and kernels per shape) and binds numpy buffers
as the requests' tensors, so the loop's writes are the graphs' inputs and `s` is one buffer
shared by the encoder's output and the decoder's input, as in the onnxruntime backend.
An int8 build's per-token sites (int8 weights, quant/per_token.py) get their activations quantised
per token at run time: the manifest's group size is the plugin's DYNAMIC_QUANTIZATION_GROUP_SIZE.
"""

from __future__ import annotations

from typing import ClassVar

from ..errors import DDTError
from ..manifest import Manifest
from .buffers import HostRunner, Roles, Rows, host_buffers, row_sets

INFERENCE_PRECISION = {"bf16": "bf16", "fp32": "f32"}  # ours -> OpenVINO's INFERENCE_PRECISION_HINT


def per_token_group(manifest: Manifest) -> int | None:
    """The channel group of the build's per-token int8 sites (quant/per_token.py), None when it has none."""
    q = manifest.doc.quantization
    return q.scheme.per_token.group_size if q is not None and q.scheme.per_token is not None else None


def bf16_supported(core) -> bool:
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVinoRunner(HostRunner):
    def __init__(self, backend: "OpenVinoBackend", batch: int):
        self.x, self.t, self.y, self.s, self.v = host_buffers(backend.encoder_spec, backend.decoder_spec, batch, "OpenVINO")
        self._backend = backend
        # requests for every row and for the conditional half, each compiled for its row count, over views of the same buffers
        self._req = row_sets(batch, self._requests)

    def _requests(self, rows: Rows) -> tuple:
        import openvino as ov

        r = self._backend.roles
        enc, dec = (m.create_infer_request() for m in self._backend.compiled(rows.count))
        # shared_memory: the request reads and writes these numpy arrays (or their row views) in place, no copies per call
        for req, name, a in ((enc, r.enc_x, self.x), (enc, r.enc_t, self.t), (enc, r.enc_y, self.y), (enc, r.enc_s, self.s),
                             (dec, r.dec_x, self.x), (dec, r.dec_s, self.s), (dec, r.dec_v, self.v)):
            req.set_tensor(name, ov.Tensor(rows.of(a), shared_memory=True))
        return enc, dec

    def encode(self, cond_only: bool = False) -> None:
        # start_async + wait, not infer(): infer() returns copies of the outputs on every call
        req = self._req[cond_only][0]
        req.start_async()
        req.wait()

    def decode(self, cond_only: bool = False) -> None:
        req = self._req[cond_only][1]
        req.start_async()
        req.wait()


class OpenVinoBackend:
    name = "openvino"
    OPTIONS: ClassVar[dict[str, str]] = {"threads": "INFERENCE_NUM_THREADS of its compiled graphs",
               "precision": "its inference precision, fp32 or bf16 (default bf16 where the CPU has it)"}

    def __init__(self, manifest: Manifest, precision: str | None = None, threads: int | None = None):
        try:
            import openvino as ov
        except ImportError:
            raise DDTError("the openvino backend needs the openvino package: pip install openvino") from None
        self.manifest = manifest
        self.encoder_spec, self.decoder_spec = manifest.graph("encoder"), manifest.graph("decoder")
        self.roles = Roles.of(self.encoder_spec, self.decoder_spec)
        self.core = ov.Core()
        if precision is None:
            precision = "bf16" if bf16_supported(self.core) else "fp32"
        if precision not in INFERENCE_PRECISION:
            raise DDTError(f"unknown OpenVINO precision {precision!r}; choose {' or '.join(INFERENCE_PRECISION)}")
        self.precision = precision
        self.config = {"INFERENCE_PRECISION_HINT": INFERENCE_PRECISION[precision], "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = int(threads)
        group = per_token_group(manifest)
        if group is not None:  # the build's per-token int8 sites: activations quantised per token in groups of this
            self.config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = group
        self._models = {name: self._read(name) for name in ("encoder", "decoder")}
        self._compiled: dict[int, tuple] = {}

    def _read(self, name: str):
        path = self.manifest.path(self.manifest.graph(name).file)
        try:
            return self.core.read_model(str(path))  # external data (<file>.data) is found beside it
        except Exception as e:  # OpenVINO raises RuntimeError subclasses of its own
            raise DDTError(f"{path}: OpenVINO cannot read it ({str(e).splitlines()[0][:200]}); rebuild the folder") from None

    def compiled(self, batch: int) -> tuple:
        """(encoder, decoder) compiled for a static CFG batch, once per batch size."""
        if batch not in self._compiled:
            out = []
            for name in ("encoder", "decoder"):
                model = self._models[name].clone()
                spec = self.manifest.graph(name)
                model.reshape({t.name: list(t.concrete(batch)) for t in spec.inputs})
                out.append(self.core.compile_model(model, "CPU", self.config))
            self._compiled[batch] = tuple(out)
        return self._compiled[batch]

    def runner(self, batch: int) -> OpenVinoRunner:
        return OpenVinoRunner(self, batch)
