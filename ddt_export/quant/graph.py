"""One graph being quantised: onnxruntime's quantiser over recorded feeds, site variants, their errors against fp32.

sites.py decides what to quantise and run.py drives it; this module makes the graphs and measures them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from .fp8 import to_fp8
from .sites import QUANTISED_OPS, site_nodes

EXTERNAL_LIMIT = 1_800_000_000  # bytes; larger graphs are written with `<file>.data`, as export does


class Reader:
    """Recorded feeds as onnxruntime's quantiser reads them (the interface of its CalibrationDataReader)."""

    def __init__(self, feeds: list[dict]):
        self.feeds, self.i = feeds, 0

    def get_next(self):
        if self.i >= len(self.feeds):
            return None
        self.i += 1
        return self.feeds[self.i - 1]

    def rewind(self):
        self.i = 0

    def __len__(self):
        return len(self.feeds)

    def set_range(self, start_index: int, end_index: int):  # used only with CalibStridedMinMax
        self.feeds = self.feeds[start_index:end_index]
        self.i = 0


# ----------------------------------------------------------------------------- quantising


def ort_quantize(fp32: Path, out: Path, nodes: list[str], cache: Path, feeds: list[dict], large: bool) -> None:
    """int8 QDQ of `nodes` only (weights int8 per output channel, activations int8 per tensor, both symmetric).

    The activation ranges are max |x| over `feeds`, measured on the first call and read from `cache` after it.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(
        str(fp32), str(out), Reader(feeds) if not cache.exists() else None,
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(QUANTISED_OPS),
        nodes_to_quantize=nodes,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        use_external_data_format=large,
        calibration_cache_path=str(cache),
        extra_options={
            "ActivationSymmetric": True,  # TensorRT: zero points must be 0
            "WeightSymmetric": True,
            "QuantizeBias": False,  # TensorRT has no int32 DequantizeLinear; biases stay float
            "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},  # MatMul B is (K, N): one scale per output column
            # Q/DQ on matmul inputs only, as TensorRT's explicit quantisation and Model Optimizer place them:
            # quantising outputs too adds error before SiLU/softmax and keeps onnxruntime from fusing
            # DQ -> MatMul -> float into MatMulIntegerToFloat (measured: the B/2 encoder's SwiGLU ran as
            # float MatMuls over per-call dequantised weights, 3x slower than fp32).
            "OpTypesToExcludeOutputQuantization": list(QUANTISED_OPS),
            # One Q/DQ pair per consumer: a DQ shared by two MatMuls (SwiGLU's w1 and w3) is not fused
            # by onnxruntime on x86; backends.onnxruntime_backend keeps the pairs apart at load time.
            "DedicatedQDQPair": True,
        },
    )


def load(path: Path) -> onnx.ModelProto:
    return onnx.load(str(path), load_external_data=True)


def save(model: onnx.ModelProto, path: Path) -> None:
    for p in (path, path.with_name(path.name + ".data")):
        p.unlink(missing_ok=True)
    if model.ByteSize() > EXTERNAL_LIMIT:
        onnx.save(model, str(path), save_as_external_data=True, location=path.name + ".data", all_tensors_to_one_file=True)
    else:
        onnx.save(model, str(path))


def fp32_weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer if t.data_type == TensorProto.FLOAT and len(t.dims) == 2}


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """{op: nodes} of the Q/DQ and matmul ops of a quantised graph."""
    out: dict[str, int] = {}
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear", "MatMul", "Gemm"):
            out[n.op_type] = out.get(n.op_type, 0) + 1
    return out


class Graph:
    """One graph being quantised: its fp32 file, activation-range cache, held-out feeds and fp32 outputs on them.

    `probes` are extra inputs that count for the max error only (the build check's random inputs).
    """

    def __init__(self, name: str, fp32: Path, work: Path, range_feeds: list[dict], heldout: list[dict], precision: str,
                 num_encoder_blocks: int, probes: Sequence[dict] = ()):
        import onnxruntime as ort

        self.name, self.fp32, self.work, self.range_feeds, self.heldout, self.precision = name, fp32, work, range_feeds, heldout, precision
        self.probes = list(probes)
        self.model = onnx.load(str(fp32), load_external_data=False)
        self.sites = site_nodes(self.model, num_encoder_blocks)
        self.large = fp32.with_name(fp32.name + ".data").exists()
        self.cache = work / f"{name}-ranges.json"
        self.weights: dict[str, np.ndarray] | None = None
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(fp32), opts, providers=["CPUExecutionProvider"])
        # fp32 outputs once: an fp32 XL/2 session costs a 2.7 GB load per evaluation otherwise
        self.reference = [session.run(None, f)[0] for f in heldout]
        self.probe_reference = [session.run(None, f)[0] for f in self.probes]
        self.variant = 0

    def quantised(self, sites: Sequence[str]) -> onnx.ModelProto:
        nodes = [n for s in sites for n in self.sites[s]]
        if not nodes:  # quantize_static reads an empty node list as "every node"
            return load(self.fp32)
        out = self.work / f"{self.name}-{self.variant}.onnx"
        self.variant += 1
        ort_quantize(self.fp32, out, nodes, self.cache, self.range_feeds, self.large)
        # quantize_static quantises a graph input (the decoder's s) once and rewires every consumer to its DQ,
        # float sites included: put the fp32 inputs back on every matmul that was not asked for
        model = self.only(load(out), sites)
        for p in (out, out.with_name(out.name + ".data")):
            p.unlink(missing_ok=True)
        if self.precision == "fp8":
            if self.weights is None:
                self.weights = fp32_weights(load(self.fp32))
            model = to_fp8(model, self.weights)
        return model

    def only(self, full: onnx.ModelProto, sites: Sequence[str]) -> onnx.ModelProto:
        """`full` (every site quantised) with only `sites` still quantised; the other matmuls read their fp32 inputs again.

        The same graph quantised(sites) writes, without a quantize_static pass over the whole model per
        variant (minutes each for XL/2): every range comes from the one range cache and every matmul
        has its own Q/DQ pair, so a site's pairs do not depend on which other sites are quantised.
        """
        keep = {n for s in sites for n in self.sites[s]}
        original = {n.name: n for n in self.model.graph.node}
        model = onnx.ModelProto()
        model.CopyFrom(full)
        reread: set[str] = set()
        for n in model.graph.node:
            if n.op_type in QUANTISED_OPS and n.name in original and n.name not in keep:
                del n.input[:]
                n.input.extend(original[n.name].input)
                reread.update(original[n.name].input)
        while True:  # the orphaned Q/DQ chains
            used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
            dead = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") and not set(n.output) & used]
            if not dead:
                break
            for n in dead:
                model.graph.node.remove(n)
        have = {t.name for t in model.graph.initializer}
        if reread - have:
            if self.weights is None:
                self.weights = fp32_weights(load(self.fp32))
            model.graph.initializer.extend(numpy_helper.from_array(self.weights[w], w) for w in sorted(reread - have) if w in self.weights)
        used = {i for n in model.graph.node for i in n.input}
        kept = [t for t in model.graph.initializer if t.name in used]
        del model.graph.initializer[:]
        model.graph.initializer.extend(kept)
        return model

    def range_tensors(self) -> int | None:
        """How many tensors the range cache holds activation ranges for (None: a cache format this does not know)."""
        ranges = json.loads(self.cache.read_text()) if self.cache.exists() else {}
        return len(ranges.get("data", ranges)) if isinstance(ranges, dict) else None

    def error(self, model: onnx.ModelProto) -> float:
        """Relative L2 error of the graph's output against fp32 over the held-out trajectory inputs."""
        return self.errors(model)[0]

    def errors(self, model: onnx.ModelProto, openvino_group: int | None = None) -> tuple[float, float]:
        """(relative L2 error over the held-out trajectory inputs, max |q - f| / max |f| over them and the probes).

        Run by onnxruntime; `openvino_group` given: by OpenVINO (f32, activations of int8-compressed weights
        quantised per token in groups of that many channels: the per-token scheme, per_token.py).
        """
        path = self.work / f"{self.name}-eval.onnx"
        save(model, path)
        run = _openvino_run(path, openvino_group) if openvino_group else _onnxruntime_run(path)
        num = den = 0.0
        worst = 0.0
        for feeds, want in zip(self.heldout, self.reference):
            got = run(feeds).astype(np.float64)
            num += float(((got - want) ** 2).sum())
            den += float((want.astype(np.float64) ** 2).sum())
            worst = max(worst, float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12)))
        for feeds, want in zip(self.probes, self.probe_reference):
            got = run(feeds)
            worst = max(worst, float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12)))
        del run
        for p in (path, path.with_name(path.name + ".data")):
            p.unlink(missing_ok=True)
        return math.sqrt(num / max(den, 1e-30)), worst


def _onnxruntime_run(path: Path):
    """feeds -> the graph's first output, by an onnxruntime CPU session of `path`."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return lambda feeds: session.run(None, feeds)[0]


def _openvino_run(path: Path, group: int):
    """feeds -> the graph's first output, by OpenVINO's CPU plugin in f32 with per-token dynamic quantisation of `group`."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": group})
    request = compiled.create_infer_request()
    return lambda feeds: request.infer(feeds)[compiled.output(0)].copy()
