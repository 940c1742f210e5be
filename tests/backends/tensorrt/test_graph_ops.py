"""Every saved graph parses in TensorRT's ONNX parser: standard ops, opset <= 20, types it supports.

The allowlist is TensorRT 10's operator support matrix (onnx-tensorrt docs/operators.md,
"Supported Types" column), restricted to the operators a DDT graph can plausibly contain;
anything else the exporter emits fails here and must be looked up before it is allowed.
int8/fp8 builds add QuantizeLinear/DequantizeLinear under TensorRT's explicit-quantisation
rules: int8 or fp8 e4m3 only, scales and zero points initializers, zero points 0 (symmetric).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from ddt_export.precision.half import op_inventory

T = TensorProto
F, H, B, I32, I64, BOOL = T.FLOAT, T.FLOAT16, T.BFLOAT16, T.INT32, T.INT64, T.BOOL
FLOATS = {F, H, B}
# op -> output types TensorRT 10 supports for it
TRT10 = {
    **{op: FLOATS for op in ("MatMul", "Gemm", "Softmax", "Sigmoid", "Cos", "Sin", "Sqrt", "Reciprocal", "Erf", "Exp", "Tanh",
                             "LayerNormalization", "Neg", "Div")},
    **{op: FLOATS | {I32, I64} for op in ("Add", "Sub", "Mul", "Pow", "ReduceMean", "ReduceSum", "ReduceMax", "Max", "Min", "Range")},
    **{op: FLOATS | {I32, I64, BOOL} for op in ("Reshape", "Transpose", "Unsqueeze", "Squeeze", "Concat", "Gather", "Slice",
                                                 "Split", "Expand", "Identity", "Where", "Shape", "Flatten", "Constant",
                                                 "ConstantOfShape", "Tile")},
    "Cast": FLOATS | {I32, I64, BOOL, T.UINT8},
    "Equal": {BOOL}, "Less": {BOOL}, "Greater": {BOOL}, "Not": {BOOL}, "And": {BOOL}, "Or": {BOOL},
    "QuantizeLinear": {T.INT8, T.FLOAT8E4M3FN},  # explicit quantisation: TensorRT 10 parses int8 and fp8 e4m3 Q/DQ
    "DequantizeLinear": FLOATS,
}
QUANT_TYPES = {T.INT8, T.FLOAT8E4M3FN}
# inputs TensorRT needs as build-time constants (initializer or Constant): (op, input index)
CONST_INPUTS = {("ReduceMean", 1), ("ReduceSum", 1), ("Squeeze", 1), ("Unsqueeze", 1), ("Slice", 3)}
COMPLEX = {T.COMPLEX64, T.COMPLEX128}


def graphs(*folders):
    for folder in folders:
        for name in ("encoder", "decoder"):
            yield folder, name, onnx.load(str(folder / f"{name}.onnx"), load_external_data=False)


def check_graph(model: onnx.ModelProto) -> list[str]:
    problems = []
    for imp in model.opset_import:
        if imp.domain not in ("", "ai.onnx"):
            problems.append(f"non-standard opset domain {imp.domain!r}")
        elif imp.version > 20:
            problems.append(f"opset {imp.version} > 20")
    if model.functions:
        problems.append(f"local functions {[f.name for f in model.functions]}")
    m = onnx.shape_inference.infer_shapes(model)
    g = m.graph
    types = {v.name: v.type.tensor_type.elem_type for v in list(g.value_info) + list(g.input) + list(g.output)}
    types.update({t.name: t.data_type for t in g.initializer})
    consts = {t.name for t in g.initializer} | {o for n in g.node if n.op_type == "Constant" for o in n.output}
    for n in g.node:
        if n.domain not in ("", "ai.onnx"):
            problems.append(f"{n.name}: {n.domain}::{n.op_type} is not a standard op")
            continue
        if n.op_type not in TRT10:
            problems.append(f"{n.name}: {n.op_type} is not in the checked TensorRT 10 list")
            continue
        out_type = types.get(n.output[0]) if n.op_type != "Constant" else next(a.t.data_type for a in n.attribute if a.name == "value")
        if out_type is None:
            problems.append(f"{n.name}: {n.op_type} output has no inferred type")
        elif out_type not in TRT10[n.op_type]:
            problems.append(f"{n.name}: {n.op_type} producing {T.DataType.Name(out_type)}, which TensorRT does not support for it")
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            problems += check_qdq(n, types, {t.name: t for t in g.initializer})
        for op, idx in CONST_INPUTS:
            if n.op_type == op and len(n.input) > idx and n.input[idx] and n.input[idx] not in consts:
                problems.append(f"{n.name}: {op} input {idx} must be a build-time constant")
    for name, tp in types.items():
        if tp in COMPLEX or tp == T.DOUBLE:
            problems.append(f"tensor {name} is {T.DataType.Name(tp)}")
    return problems


def check_qdq(n, types: dict, inits: dict) -> list[str]:
    """TensorRT's Q/DQ rules: scale and zero point are initializers, zero points 0, quantised side int8 or fp8 e4m3."""
    from onnx import numpy_helper

    problems = []
    if len(n.input) < 3 or n.input[1] not in inits or n.input[2] not in inits:
        return [f"{n.name}: {n.op_type} scale and zero point must be initializers"]
    zp = inits[n.input[2]]
    if zp.data_type not in QUANT_TYPES:
        problems.append(f"{n.name}: {n.op_type} zero point of type {T.DataType.Name(zp.data_type)}")
    elif zp.data_type == T.INT8 and numpy_helper.to_array(zp).any():
        problems.append(f"{n.name}: int8 zero point not 0 (TensorRT quantises symmetrically)")
    elif zp.data_type == T.FLOAT8E4M3FN and any(b for b in zp.raw_data):
        problems.append(f"{n.name}: fp8 zero point not 0")
    if inits[n.input[1]].data_type != T.FLOAT:
        problems.append(f"{n.name}: scale must be float32 below opset 21")
    if n.op_type == "DequantizeLinear" and types.get(n.input[0]) not in QUANT_TYPES:
        problems.append(f"{n.name}: DequantizeLinear of {T.DataType.Name(types.get(n.input[0], 0))}, TensorRT reads int8 or fp8 only")
    return problems


def test_fp32_and_fp16_graphs_use_only_what_tensorrt_parses(built, built_fp16):
    inventory = {}
    for folder, name, model in graphs(built, built_fp16):
        assert check_graph(model) == [], f"{folder.name}/{name}"
        inventory[f"{folder.name}/{name}"] = op_inventory(model)
    every = set().union(*inventory.values())
    assert not any("Col2Im" in op or "com.microsoft" in op for op in every)
    assert all(op.startswith("ai.onnx::") for op in every)


def test_fp16_graph_types_are_fp16_with_fp32_io_where_declared(built_fp16):
    from ddt_export.manifest import read

    m = read(built_fp16)
    for _, name, model in graphs(built_fp16):
        spec = m.graph(name)
        io = {v.name: v.type.tensor_type.elem_type for v in list(model.graph.input) + list(model.graph.output)}
        want = {t.name: {"float32": F, "float16": H, "int64": I64}[t.dtype] for t in spec.inputs + spec.outputs}
        assert io == want  # x, t, v fp32 at the boundary; s fp16 between the graphs
        assert {t.data_type for t in model.graph.initializer if t.data_type in FLOATS} <= {H, F}


def test_int8_and_fp8_qdq_graphs_use_only_what_tensorrt_parses(built_int8, built_fp8):
    for folder, name, model in graphs(built_int8, built_fp8):
        assert check_graph(model) == [], f"{folder.name}/{name}"
        ops = op_inventory(model)
        assert ops.get("ai.onnx::QuantizeLinear", 0) > 0 and ops.get("ai.onnx::DequantizeLinear", 0) > 0
        assert all(op.startswith("ai.onnx::") for op in ops)  # no com.microsoft Q/DQ or QLinear* contrib ops


def test_the_checker_catches_qdq_tensorrt_would_refuse():
    from onnx import helper, numpy_helper

    x = helper.make_tensor_value_info("x", F, [2, 3])
    y = helper.make_tensor_value_info("y", F, [2, 3])

    def qdq(zp_value, zp_type=np.int8, dq_from_int32=False):
        inits = [numpy_helper.from_array(np.float32(0.1), "s"), numpy_helper.from_array(np.array(zp_value, zp_type), "z"),
                 numpy_helper.from_array(np.zeros((2, 3), np.int32), "w32"), numpy_helper.from_array(np.int32(0), "z32")]
        nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]), helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
        if dq_from_int32:
            nodes[1] = helper.make_node("DequantizeLinear", ["w32", "s", "z32"], ["y"])
        return helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits), opset_imports=[helper.make_opsetid("", 19)])

    assert check_graph(qdq(0)) == []
    assert any("zero point not 0" in p for p in check_graph(qdq(3)))
    assert any("uint8" in p.lower() or "UINT8" in p for p in check_graph(qdq(0, np.uint8)))
    assert any("int8 or fp8 only" in p for p in check_graph(qdq(0, dq_from_int32=True)))


def test_the_checker_catches_what_tensorrt_would_refuse():
    from onnx import helper

    x = helper.make_tensor_value_info("x", F, [2, 3])
    y = helper.make_tensor_value_info("y", F, [2, 3])
    bad = helper.make_model(helper.make_graph([helper.make_node("Col2Im", ["x", "x", "x"], ["y"])], "g", [x], [y]),
                            opset_imports=[helper.make_opsetid("", 21)])
    problems = check_graph(bad)
    assert any("opset 21" in p for p in problems) and any("Col2Im" in p for p in problems)
    contrib = helper.make_model(helper.make_graph([helper.make_node("FastGelu", ["x"], ["y"], domain="com.microsoft")], "g", [x], [y]),
                                opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)])
    assert any("non-standard" in p for p in check_graph(contrib))


@pytest.mark.slow
def test_bf16_graphs_use_only_what_tensorrt_parses(official, tmp_path):
    from typer.testing import CliRunner

    from ddt_export.cli import app

    out = tmp_path / "bf16"
    r = CliRunner().invoke(app, ["build", "--config", str(official.config), "--ckpt", str(official.ckpt), "--precision", "bf16", "--out", str(out)])
    assert r.exit_code == 0, r.output
    for folder, name, model in graphs(out):
        assert check_graph(model) == [], name
