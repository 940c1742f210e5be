"""fp8 e4m3 QDQ graphs for TensorRT on Ada/Hopper, converted from an int8 QDQ graph whose ranges are max |x| (graph.py)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

FP8_MAX = 448.0  # largest finite float8 e4m3fn
INT8_MAX = 127.0  # symmetric int8 range [-127, 127]


def to_fp8(model: onnx.ModelProto, fp32_weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """An int8 QDQ graph with max-|x| ranges -> fp8 e4m3 QDQ: scales x 127/448, zero points fp8 0, weights re-quantised.

    The same conversion as Model Optimizer's `int8_to_fp8`, except that weights stored as int8
    are re-quantised from their fp32 values (not reinterpreted), so they keep e4m3's precision.
    """
    import ml_dtypes

    g = model.graph
    inits = {t.name: i for i, t in enumerate(g.initializer)}
    done: set[str] = set()

    def put(name: str, array: np.ndarray, dtype: int | None = None) -> None:
        if dtype == TensorProto.FLOAT8E4M3FN:
            t = onnx.helper.make_tensor(name, dtype, array.shape, array.view(np.uint8).tobytes(), raw=True)
        else:
            t = numpy_helper.from_array(array, name)
        g.initializer[inits[name]].CopyFrom(t)

    for n in g.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        scale_name, zp_name = n.input[1], n.input[2]
        if scale_name not in done:
            scale = numpy_helper.to_array(g.initializer[inits[scale_name]]).astype(np.float32)
            put(scale_name, (scale * (INT8_MAX / FP8_MAX)).astype(np.float32))
            done.add(scale_name)
        if zp_name not in done:
            zp = numpy_helper.to_array(g.initializer[inits[zp_name]])
            put(zp_name, np.zeros(zp.shape, ml_dtypes.float8_e4m3fn), TensorProto.FLOAT8E4M3FN)
            done.add(zp_name)
        if n.op_type == "DequantizeLinear" and n.input[0] in inits and n.input[0] not in done:
            q = n.input[0]  # an int8 weight `<w>_quantized`: re-quantise the fp32 weight with the fp8 scale
            w = fp32_weights[q.removesuffix("_quantized")]
            scale = numpy_helper.to_array(g.initializer[inits[scale_name]]).astype(np.float32)
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            shape = [1] * w.ndim
            if scale.ndim:
                shape[axis] = -1
            scaled = np.clip(w / scale.reshape(shape), -FP8_MAX, FP8_MAX)
            put(q, scaled.astype(ml_dtypes.float8_e4m3fn), TensorProto.FLOAT8E4M3FN)
            done.add(q)
    for imp in model.opset_import:  # float8 Q/DQ need opset 19; no op in these graphs changed meaning 18 -> 19
        if imp.domain in ("", "ai.onnx") and imp.version < 19:
            imp.version = 19
    return model
