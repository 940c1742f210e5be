"""The machine's matmul ceiling, measured in the same run as the latencies it judges.

A graph's achieved FLOP/s means little alone; as a fraction of the best square matmul the
same threads reach at that moment (fp32 with numpy and torch, bf16 with torch), it says
how much of the machine the runtime used, under whatever load the machine had.
"""

from __future__ import annotations

import time

import numpy as np

SIZE = 2048  # square: 17 GFLOP a product, ~0.1-0.5 s on 2 cores, large enough for a kernel's peak


def best_rate(matmul, size: int, repeat: int) -> float:
    """Best GFLOP/s of `repeat` products after one warm-up (the best is the ceiling, not a typical run)."""
    matmul()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        matmul()
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def measure(threads: int, size: int = SIZE, repeat: int = 5) -> dict:
    """{"fp32": GFLOP/s, "bf16": GFLOP/s, "sources": {...}}: fp32 is the better of numpy and torch."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(0)
        a32, b32 = torch.randn(size, size, generator=g), torch.randn(size, size, generator=g)
        a16, b16 = a32.bfloat16(), b32.bfloat16()
        na, nb = a32.numpy(), b32.numpy()
        out32, out16, nout = torch.empty_like(a32), torch.empty_like(a16), np.empty_like(na)
        with torch.inference_mode():
            rates = {
                # numpy's BLAS follows OMP/OPENBLAS thread variables, not torch's; it is a second opinion
                "numpy_fp32": best_rate(lambda: np.matmul(na, nb, out=nout), size, repeat),
                "torch_fp32": best_rate(lambda: torch.mm(a32, b32, out=out32), size, repeat),
                "torch_bf16": best_rate(lambda: torch.mm(a16, b16, out=out16), size, repeat),
            }
    finally:
        torch.set_num_threads(old)
    return {
        "fp32": max(rates["numpy_fp32"], rates["torch_fp32"]),
        "bf16": rates["torch_bf16"],
        "size": size,
        "threads": threads,
        "sources_gflops": {k: round(v, 1) for k, v in rates.items()},
    }


def int8(threads: int, size: int = SIZE, repeat: int = 5) -> dict:
    """{"int8": best GOP/s, "sources_gops": {...}}: a size^2 int8 product as onnxruntime's MatMulInteger (u8 x s8, MLAS),
    as the QDQ pattern the int8 graphs spell (Q/DQ activation, DQ int8 weights, MatMul) in onnxruntime and in OpenVINO."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.integers(-127, 127, (size, size), dtype=np.int8)
    a = rng.integers(0, 255, (size, size), dtype=np.uint8)
    x = rng.normal(size=(size, size)).astype(np.float32)
    fx = helper.make_tensor_value_info("x", TensorProto.FLOAT, [size, size])
    integer = helper.make_model(helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "w"], ["c"])], "matmulinteger",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [size, size])],
        [helper.make_tensor_value_info("c", TensorProto.INT32, [size, size])], [numpy_helper.from_array(w, "w")]),
        opset_imports=[helper.make_opsetid("", 18)])
    qdq = helper.make_model(helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]), helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
         helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=1), helper.make_node("MatMul", ["xd", "wd"], ["y"])],
        "qdq", [fx], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size, size])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.full(size, 0.01, np.float32), "ws"),
         numpy_helper.from_array(np.zeros(size, np.int8), "wz"), numpy_helper.from_array(np.float32(0.05), "xs"),
         numpy_helper.from_array(np.int8(0), "xz")]), opset_imports=[helper.make_opsetid("", 18)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    s1 = ort.InferenceSession(integer.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    s2 = ort.InferenceSession(qdq.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    out: dict[str, float | str] = {
        "onnxruntime_matmulinteger_u8s8": best_rate(lambda: s1.run(None, {"a": a}), size, repeat),
        "onnxruntime_qdq_matmul": best_rate(lambda: s2.run(None, {"x": x}), size, repeat),
    }
    try:
        import tempfile

        import openvino as ov

        with tempfile.TemporaryDirectory(prefix="ddt-ceiling-") as tmp:  # OpenVINO reads ONNX from a file
            onnx.save(qdq, f"{tmp}/qdq.onnx")
            compiled = ov.Core().compile_model(f"{tmp}/qdq.onnx", "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
        req = compiled.create_infer_request()
        out["openvino_qdq_matmul"] = best_rate(lambda: req.infer({0: x}), size, repeat)
    except Exception as e:  # noqa: BLE001 - a reference number; say why it is missing
        out["openvino_error"] = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
    return {"int8": max(v for v in out.values() if isinstance(v, float)),
            "sources_gops": {k: round(v, 1) if isinstance(v, float) else v for k, v in out.items()}, "size": size}
