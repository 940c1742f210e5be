"""onnxruntime: the default backend, CPU anywhere and CUDA where onnxruntime-gpu is installed.

Buffers are numpy arrays bound once through IOBinding (zero-copy on the CPU); the state s
is one buffer bound as the encoder's output and the decoder's input, so sharing it costs
nothing.
"""

from __future__ import annotations

from typing import ClassVar

from ..errors import DDTError
from ..manifest import Manifest
from .buffers import HostRunner, Roles, Rows, host_buffers, row_sets


def session(path, providers: list[str], threads: int | None = None, quantized: bool = False, fold_weights: bool = False):
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
    # QDQ graphs carry one Q/DQ pair per consumer (quant/graph.py); common-subexpression elimination would
    # merge them back into one DQ shared by two MatMuls, which onnxruntime then leaves unfused on x86.
    disabled = ["CommonSubexpressionElimination"] if quantized else []
    model = weights_folded(path) if fold_weights else None
    try:
        return ort.InferenceSession(model or str(path), opts, providers=providers, disabled_optimizers=disabled)
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
        raise DDTError(f"{path}: onnxruntime cannot load it ({str(e).splitlines()[0][:200]}); rebuild the folder") from None


def weights_folded(path) -> bytes | None:
    """The graph at `path` with its weight-only int8 matmuls (per-token sites, quant/per_token.py) folded to fp32, or None.

    onnxruntime's CPU provider has no per-token activation int8 for them and would dequantise their weights
    on every call (measured on the B/2 decoder: 1.8x the fp32 graph's time); folded once here they run as the
    fp32 matmuls of exactly the int8-rounded weights the graph holds. None: nothing to fold, or a graph that
    would not fit one protobuf (2 GB) folded, which then runs as it is.
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from ..quant.per_token import compressed_matmuls

    model = onnx.load(str(path), load_external_data=True)
    matmuls = compressed_matmuls(model)
    if not matmuls:
        return None
    inits = {t.name: t for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    folded: dict[str, onnx.TensorProto] = {}
    for n in model.graph.node:
        if n.name in matmuls:
            dq = producers[n.input[1]]
            q = numpy_helper.to_array(inits[dq.input[0]]).astype(np.float32)
            scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float32)
            axis = next((a.i for a in dq.attribute if a.name == "axis"), 1) % q.ndim
            shape = [1] * q.ndim
            shape[axis] = -1
            folded[dq.output[0]] = numpy_helper.from_array(q * scale.reshape(shape), dq.output[0])
    nodes = [n for n in model.graph.node if not (n.op_type == "DequantizeLinear" and n.output[0] in folded)]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {i for n in nodes for i in n.input}
    kept = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept + list(folded.values()))
    if model.ByteSize() >= 2**31 - 1:
        return None
    return model.SerializeToString()


def default_providers() -> list:
    """CPU, CUDA or TensorRT providers: $DDT_ORT_PROVIDERS (e.g. tensorrt,cuda,cpu), else CUDA where present, then CPU."""
    from .ort_providers import providers

    return providers()


class OnnxRuntimeRunner(HostRunner):
    def __init__(self, backend: "OnnxRuntimeBackend", batch: int):
        self.x, self.t, self.y, self.s, self.v = host_buffers(backend.encoder_spec, backend.decoder_spec, batch, "onnxruntime",
                                                              half_as_float32=backend.emulate_half)
        self._enc, self._dec, self._roles = backend.encoder, backend.decoder, backend.roles
        # IOBindings for every row and for the conditional half, over views of the same buffers
        self._io = row_sets(batch, self._bind)

    def _bind(self, rows: Rows) -> tuple:
        r, enc_io, dec_io = self._roles, self._enc.io_binding(), self._dec.io_binding()
        for io, name, a in ((enc_io, r.enc_x, self.x), (enc_io, r.enc_t, self.t), (enc_io, r.enc_y, self.y),
                            (dec_io, r.dec_x, self.x), (dec_io, r.dec_s, self.s)):
            io.bind_input(name, "cpu", 0, a.dtype, list(rows.of(a).shape), rows.of(a).ctypes.data)
        for io, name, a in ((enc_io, r.enc_s, self.s), (dec_io, r.dec_v, self.v)):
            io.bind_output(name, "cpu", 0, a.dtype, list(rows.of(a).shape), rows.of(a).ctypes.data)
        return enc_io, dec_io

    def encode(self, cond_only: bool = False) -> None:
        self._enc.run_with_iobinding(self._io[cond_only][0])

    def decode(self, cond_only: bool = False) -> None:
        self._dec.run_with_iobinding(self._io[cond_only][1])


class OnnxRuntimeBackend:
    """`emulate_half`: fp16/bf16 graphs run with half storage emulated in fp32 on the CPU (precision/half.py), the
    numerics a GPU's half kernels give; `ddt-export check` measures builds this way."""

    name = "onnxruntime"
    OPTIONS: ClassVar[dict[str, str]] = {"threads": "intra-op threads of its encoder and decoder sessions"}

    def __init__(self, manifest: Manifest, providers: list[str] | None = None, threads: int | None = None, emulate_half: bool = False):
        self.manifest, self.emulate_half = manifest, emulate_half
        self.encoder_spec, self.decoder_spec = manifest.graph("encoder"), manifest.graph("decoder")
        self.roles = Roles.of(self.encoder_spec, self.decoder_spec)
        self.precision = manifest.precision
        if emulate_half:
            from ..precision.half import cpu_session

            self.providers = ["CPUExecutionProvider"]
            self.encoder, self.decoder = (cpu_session(manifest.path(g.file)) for g in (self.encoder_spec, self.decoder_spec))
        else:
            self.providers = providers or default_providers()
            quantized = manifest.precision in ("int8", "fp8")
            q = manifest.doc.quantization
            fold = {g: q is not None and g in q.graphs and (q.graphs[g].per_token_nodes or 0) > 0 for g in ("encoder", "decoder")}
            self.encoder = session(manifest.path(self.encoder_spec.file), self.providers, threads, quantized, fold["encoder"])
            self.decoder = session(manifest.path(self.decoder_spec.file), self.providers, threads, quantized, fold["decoder"])

    def runner(self, batch: int) -> OnnxRuntimeRunner:
        return OnnxRuntimeRunner(self, batch)
