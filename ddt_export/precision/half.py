"""Half precision in ONNX graphs: fp16/bf16 storage emulated on onnxruntime's CPU, and where a graph computes in what.

Half-precision graphs are run by emulation on onnxruntime's CPU provider: every fp16/bf16
tensor becomes fp32 rounded to half after the node that makes it (`Cast` to half and
back), i.e. half storage with fp32 arithmetic, which is how GPU half kernels accumulate,
with overflow to inf where they would overflow. Running the graph as is would understate
fp16 errors: onnxruntime's CPU provider has fp16 kernels for few ops and computes the rest
in fp32, keeping fp32 values between consecutive such nodes (and it has no bf16 kernels).

Export checks every graph through `cpu_session`; `ddt-export check` (report.py)
and the TensorRT op checks read `islands` and `op_inventory`.
"""

from __future__ import annotations

import ast
import copy
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LAYOUT = {"Reshape", "Transpose", "Slice", "Squeeze", "Unsqueeze", "Split", "Concat", "Gather", "Expand", "Identity"}
HALF_TYPES = {TensorProto.FLOAT16: "float16", TensorProto.BFLOAT16: "bfloat16"}


def half_types(model: onnx.ModelProto) -> set[int]:
    """The half-precision element types (FLOAT16, BFLOAT16) a graph uses anywhere."""
    g = model.graph
    found = {t.data_type for t in g.initializer}
    found |= {v.type.tensor_type.elem_type for v in list(g.input) + list(g.output) + list(g.value_info)}
    found |= {a.i for n in g.node for a in n.attribute if a.name == "to"}
    found |= {a.t.data_type for n in g.node for a in n.attribute if a.type == onnx.AttributeProto.TENSOR}
    return found & set(HALF_TYPES)


def emulate_half(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph with its fp16/bf16 storage emulated in fp32 (see the module docstring).

    Every half tensor becomes fp32 holding a half-representable value: each node computes
    in fp32 and its half outputs are rounded (`Cast` to half and back), so overflow to inf
    and rounding happen where a GPU kernel writing half would have them. Graph inputs and
    outputs of half type become fp32.
    """
    types = tensor_types(model)
    m = copy.deepcopy(model)
    g = m.graph
    for i, t in enumerate(g.initializer):
        if t.data_type in HALF_TYPES:
            g.initializer[i].CopyFrom(numpy_helper.from_array(_half_to_f32(t), t.name))
    nodes = []
    for n in g.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type in HALF_TYPES:
                a.t.CopyFrom(numpy_helper.from_array(_half_to_f32(a.t), a.t.name))
        rounded = []
        for o in n.output:
            half = _cast_to(n) if n.op_type == "Cast" else types.get(o)
            if half in HALF_TYPES:
                rounded.append((o, half))
        if n.op_type == "Cast" and _cast_to(n) in HALF_TYPES:
            next(a for a in n.attribute if a.name == "to").i = TensorProto.FLOAT  # rounded below instead
        nodes.append(n)
        for o, half in rounded:  # node -> raw fp32 -> Cast(half) -> Cast(fp32), under the original name
            raw = f"{o}__fp32"
            n.output[list(n.output).index(o)] = raw
            nodes.append(helper.make_node("Cast", [raw], [f"{o}__half"], to=half, name=f"{o}__round"))
            nodes.append(helper.make_node("Cast", [f"{o}__half"], [o], to=TensorProto.FLOAT, name=f"{o}__back"))
    del g.node[:]
    g.node.extend(nodes)
    for v in list(g.input) + list(g.output):
        if v.type.tensor_type.elem_type in HALF_TYPES:
            v.type.tensor_type.elem_type = TensorProto.FLOAT
    del g.value_info[:]
    return m


def tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """{tensor name: element type} by shape inference on a weightless copy (XL graphs pass protobuf's 2 GB)."""
    g = model.graph
    weights = [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in g.initializer]
    skeleton = helper.make_model(helper.make_graph(list(g.node), "types", list(g.input) + weights, list(g.output)),
                                 opset_imports=list(model.opset_import), ir_version=model.ir_version)
    inferred = onnx.shape_inference.infer_shapes(skeleton).graph
    return {v.name: v.type.tensor_type.elem_type for v in list(inferred.value_info) + list(inferred.input) + list(inferred.output)}


def _cast_to(node: onnx.NodeProto) -> int:
    return next(a.i for a in node.attribute if a.name == "to")


def _half_to_f32(t: onnx.TensorProto) -> np.ndarray:
    if t.data_type == TensorProto.FLOAT16:
        return numpy_helper.to_array(t).astype(np.float32)
    if t.raw_data:
        bits = np.frombuffer(t.raw_data, np.uint16)
    else:  # int32_data holds one bf16 bit pattern per element
        bits = np.asarray(t.int32_data, np.uint32).astype(np.uint16)
    return (bits.astype(np.uint32) << 16).view(np.float32).reshape(tuple(t.dims))


INLINE_LIMIT = 1_800_000_000  # bytes: larger emulated graphs go through a temporary file with external weights


def cpu_session(path: str | Path):
    """An onnxruntime CPU session for a build's graph, fp16/bf16 storage emulated (half inputs and outputs become fp32)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    model = onnx.load(str(path), load_external_data=False)
    if not half_types(model):
        return ort.InferenceSession(str(path), opts, providers=providers)  # fp32: as saved, weights read by onnxruntime
    if _has_external(model):
        onnx.load_external_data_for_model(model, str(Path(path).parent))
    model = emulate_half(model)
    if model.ByteSize() < INLINE_LIMIT:
        return ort.InferenceSession(model.SerializeToString(), opts, providers=providers)
    tmp = tempfile.TemporaryDirectory(prefix="ddt-emulated-")
    file = Path(tmp.name) / "graph.onnx"
    onnx.save(model, str(file), save_as_external_data=True, location="graph.onnx.data")
    session = ort.InferenceSession(str(file), opts, providers=providers)
    session._ddt_tmp = tmp  # the weights file lives as long as the session
    return session


def _has_external(model: onnx.ModelProto) -> bool:
    return any(t.data_location == TensorProto.EXTERNAL for t in model.graph.initializer)


def _site(node: onnx.NodeProto) -> str:
    """Which part of the model a node computes, from the exporter's module and stack metadata."""
    meta = {p.key: p.value for p in node.metadata_props}
    try:
        classes = ast.literal_eval(meta.get("pkg.torch.onnx.class_hierarchy", "[]"))
    except (ValueError, SyntaxError):
        classes = []
    module = classes[-2].rsplit(".", 1)[-1] if len(classes) >= 2 else ""
    trace = meta.get("pkg.torch.onnx.stack_trace", "").strip().splitlines()
    code = trace[-1] if trace else ""  # the innermost module's source line (free functions get no frame)
    if node.op_type in ("MatMul", "Gemm"):
        return "linear/attention matmul"
    if node.op_type in LAYOUT:
        return "layout only (reshape, transpose, slice, ...)"
    if module == "RMSNorm":
        return "RMSNorm"
    if module == "Attention" and "apply_rope(" in code:
        return "RoPE"
    if node.op_type == "LayerNormalization" or "norm_final" in code:
        return "final LayerNorm"
    if module == "TimestepEmbedder":
        return "timestep features"
    if module in ("Block", "FinalLayer") and node.op_type in ("Add", "Mul", "Sub", "Split", "Slice", "Squeeze"):
        return "residual stream, adaLN modulation, gates"
    if node.op_type == "Softmax":
        return "softmax"
    if module == "Linear":
        return "linear/attention matmul"  # the bias add
    return "other (SiLU, embeddings)"


def islands(model: onnx.ModelProto) -> dict[str, dict[str, int]]:
    """{site: {dtype name: nodes}} by each node's output dtype (Cast and shape nodes left out)."""
    g = model.graph
    types = tensor_types(model)
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for n in g.node:
        dtype = types.get(n.output[0])
        if n.op_type in ("Cast", "Shape", "Constant") or dtype not in (TensorProto.FLOAT, *HALF_TYPES):
            continue
        out[_site(n)][HALF_TYPES.get(dtype, "float32")] += 1
    return {k: dict(v) for k, v in sorted(out.items())}


def op_inventory(model: onnx.ModelProto) -> dict[str, int]:
    """{"domain::Op": count} over the main graph and any local functions."""
    counts: dict[str, int] = defaultdict(int)
    for n in list(model.graph.node) + [n for f in model.functions for n in f.node]:
        counts[f"{n.domain or 'ai.onnx'}::{n.op_type}"] += 1
    return dict(sorted(counts.items()))
