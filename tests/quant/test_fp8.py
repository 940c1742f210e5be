"""fp8 e4m3 from an int8 QDQ graph (ddt_export.quant.fp8): the converted graph computes what e4m3 arithmetic gives."""

from __future__ import annotations

import ml_dtypes
import numpy as np
from onnx import TensorProto, helper, numpy_helper

from ddt_export.quant.fp8 import to_fp8


def test_to_fp8_matches_e4m3_arithmetic_on_a_matmul():
    """int8 QDQ MatMul -> fp8: y = (fp8(x / sx) sx) @ (fp8(w / sw) sw) with sx = amax_x / 448, sw per column."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 5)).astype(np.float32)
    x = rng.normal(size=(3, 8)).astype(np.float32)
    amax = np.float32(3.0)
    sw8 = (np.abs(w).max(0) / 127).astype(np.float32)
    q_w = np.clip(np.round(w / sw8), -127, 127).astype(np.int8)
    inits = [numpy_helper.from_array(q_w, "w_quantized"), numpy_helper.from_array(sw8, "w_scale"),
             numpy_helper.from_array(np.zeros(5, np.int8), "w_zero_point"),
             numpy_helper.from_array(np.float32(amax / 127), "x_scale"), numpy_helper.from_array(np.int8(0), "x_zero_point")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero_point"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero_point"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w_quantized", "w_scale", "w_zero_point"], ["wd"], axis=1),
             helper.make_node("MatMul", ["xd", "wd"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 5])], inits)
    model = to_fp8(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), {"w": w})
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    f8 = ml_dtypes.float8_e4m3fn
    sx, sw = amax / 448, np.abs(w).max(0) / 448
    want = (np.clip(x / sx, -448, 448).astype(f8).astype(np.float32) * sx) @ ((w / sw).astype(f8).astype(np.float32) * sw)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
