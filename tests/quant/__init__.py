"""Tests of ddt_export.quant, one module per module of the package; shared int8/fp8 builds are in tests/conftest.py."""

from __future__ import annotations

import onnx


def matmul_inputs(model: onnx.ModelProto) -> dict[str, list[str | None]]:
    """{MatMul/Gemm node: [op type producing each of its first two inputs (None: initializer or graph input)]}."""
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    return {n.name: [producers.get(i) for i in n.input[:2]] for n in model.graph.node if n.op_type in ("MatMul", "Gemm")}
