"""int8 vs OpenVINO bf16 vs onnxruntime fp32: whole sampling runs of the same model, timed in one process.

    python benchmarks/int8_latency.py --fp32 engines/ddt-b-256 --int8 engines/ddt-b-256-int8 \
        --steps 16 --ratios 0,0.75 --repeat 3 --json benchmarks/results/int8-latency-b256.json

Rows (each a backend on a build): onnxruntime fp32, OpenVINO bf16 (fp32 graphs, bf16 matmuls),
onnxruntime int8 (the QDQ graphs; MLAS VNNI kernels), OpenVINO int8 (the same QDQ graphs; the
float parts in bf16). Runs are interleaved round-robin per repeat so load from other processes
spreads over every row alike; the load average is recorded before and after. Per-call times of
each graph (CFG batch 2B) give each row's achieved GFLOP/s (architecture multiply-adds x 2 / time),
read against matmul ceilings measured in the same process: fp32 and bf16 (ddt_export.bench.ceiling)
and int8, a 2048^2 int8 x int8 -> int32 product in onnxruntime (MatMulInteger, MLAS) and the same
as a QDQ MatMul in OpenVINO. Not every matmul of an int8 graph is int8 (the float sites), so its
fraction of the int8 ceiling understates how well the int8 kernels themselves run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from ddt_export.bench.ceiling import best_rate  # the same timing rule as the fp32/bf16 ceilings


def int8_ceiling(threads: int, size: int = 2048, repeat: int = 5) -> dict:
    """Best GOP/s (2 n^3 / s) of an int8 product: onnxruntime MatMulInteger (u8 x s8) and OpenVINO on a QDQ MatMul."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    out = {}
    a = rng.integers(0, 255, (size, size), dtype=np.uint8)
    b = rng.integers(-127, 127, (size, size), dtype=np.int8)
    g = helper.make_graph([helper.make_node("MatMulInteger", ["a", "b"], ["c"])], "mmi",
                          [helper.make_tensor_value_info("a", TensorProto.UINT8, [size, size])],
                          [helper.make_tensor_value_info("c", TensorProto.INT32, [size, size])], [numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    s = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    out["onnxruntime_matmulinteger_u8s8"] = best_rate(lambda: s.run(None, {"a": a}), size, repeat)
    # the same product as the graphs spell it: Q/DQ on the activation, DQ on int8 weights, float MatMul
    x = rng.normal(size=(size, size)).astype(np.float32)
    inits = [numpy_helper.from_array(b, "w"), numpy_helper.from_array(np.full(size, 0.01, np.float32), "ws"),
             numpy_helper.from_array(np.zeros(size, np.int8), "wz"), numpy_helper.from_array(np.float32(0.05), "xs"),
             numpy_helper.from_array(np.int8(0), "xz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]), helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=1), helper.make_node("MatMul", ["xd", "wd"], ["y"])]
    qdq = helper.make_model(helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size, size])],
                                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size, size])], inits),
                            opset_imports=[helper.make_opsetid("", 18)])
    s2 = ort.InferenceSession(qdq.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    out["onnxruntime_qdq_matmul"] = best_rate(lambda: s2.run(None, {"x": x}), size, repeat)
    try:
        import openvino as ov

        core = ov.Core()
        path = Path(os.environ.get("TMPDIR", "/tmp")) / f"int8-ceiling-{os.getpid()}.onnx"
        onnx.save(qdq, str(path))
        c = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
        req = c.create_infer_request()
        out["openvino_qdq_matmul"] = best_rate(lambda: req.infer({0: x}), size, repeat)
        path.unlink()
    except Exception as e:  # noqa: BLE001 - the ceiling is a reference; say why it is missing
        out["openvino_error"] = str(e)[:200]
    best = max(v for k, v in out.items() if isinstance(v, float))
    return {"int8": best, "sources_gops": {k: round(v, 1) if isinstance(v, float) else v for k, v in out.items()}, "size": size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fp32", required=True, type=Path)
    ap.add_argument("--int8", required=True, type=Path)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--ratios", default="0,0.75")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--calls", type=int, default=5, help="per-call timings per graph")
    ap.add_argument("--rows", default="ort-fp32,ov-bf16,ort-int8,ov-int8")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import torch

    from ddt_export.backends.onnxruntime_backend import OnnxRuntimeBackend
    from ddt_export.backends.openvino_backend import OpenVinoBackend
    from ddt_export.bench import ceiling, flops
    from ddt_export.bench.latency import call_times, settle
    from ddt_export.manifest import read
    from ddt_export.pipeline import seeded_noise
    from ddt_export.sampler import sample
    from ddt_export import schedules

    threads = torch.get_num_threads()
    load = {"start": list(os.getloadavg())}
    m32, m8 = read(args.fp32), read(args.int8)
    if m32.arch != m8.arch:
        sys.exit("the two builds are of different architectures")
    makers = {
        "ort-fp32": lambda: ("onnxruntime fp32", "fp32", OnnxRuntimeBackend(m32)),
        "ov-bf16": lambda: ("openvino bf16", "bf16", OpenVinoBackend(m32, precision="bf16")),
        "ort-int8": lambda: ("onnxruntime int8 (QDQ)", "int8", OnnxRuntimeBackend(m8)),
        "ov-int8": lambda: ("openvino int8 (QDQ, float parts bf16)", "int8", OpenVinoBackend(m8, precision="bf16")),
    }
    rows = [makers[k]() for k in args.rows.split(",")]
    arch, N, B = m32.arch, args.steps, args.batch
    settings = m32.sampler.with_overrides(num_steps=N)
    labels = [(7 * i + 1) % arch.num_classes for i in range(B)]
    noise = seeded_noise(B, arch.latent_shape, 0)
    ratios = [float(r) for r in args.ratios.split(",")]
    plans = [(r, schedules.resolve(N, ratio=r or None, method="uniform")) for r in ratios]
    runners = [(name, prec, be.runner(2 * B)) for name, prec, be in rows]
    for _, _, r in runners:  # warm-up: first calls compile and allocate
        sample(r, noise, labels, m32.null_class, settings.with_overrides(num_steps=3), [0, 1, 2])
    times: dict[tuple, list[float]] = {}
    latents: dict[str, np.ndarray] = {}
    for rep in range(args.repeat):
        for name, _, r in runners:
            for ratio, rec in plans:
                settle()
                t0 = time.perf_counter()
                x = sample(r, noise, labels, m32.null_class, settings, rec)
                times.setdefault((name, ratio), []).append(time.perf_counter() - t0)
                if ratio == 0:
                    latents[name] = np.array(x, np.float32)
        print(f"repeat {rep + 1}/{args.repeat} done, load {os.getloadavg()[0]:.2f}", flush=True)
    calls = {}
    for name, _, r in runners:
        settle()
        enc, dec = call_times(r, noise, labels, m32.null_class, args.calls)
        calls[name] = {"encoder_ms": 1e3 * statistics.median(enc), "decoder_ms": 1e3 * statistics.median(dec)}
    ceil = ceiling.measure(threads)
    ceil["int8"] = int8_ceiling(threads)
    load["end"] = list(os.getloadavg())
    enc_f, dec_f = 2 * flops.encoder_macs(arch).total * 2 * B, 2 * flops.decoder_macs(arch).total * 2 * B  # FLOPs per call
    ref = latents.get("onnxruntime fp32")
    out_rows = []
    for name, prec, _ in runners:
        c = calls[name]
        gf_enc, gf_dec = enc_f / c["encoder_ms"] / 1e6, dec_f / c["decoder_ms"] / 1e6
        ceiling_g = ceil["int8"]["int8"] if prec == "int8" else ceil[prec]
        out_rows.append({
            "name": name, "precision": prec,
            "latency_s": {f"{r:g}": {"median": statistics.median(times[(name, r)]), "runs": times[(name, r)]} for r in ratios},
            "encoder_calls": {f"{r:g}": len(rec) for r, rec in plans},
            **c,
            "encoder_gflops": gf_enc, "decoder_gflops": gf_dec,
            "ceiling_gflops": ceiling_g,
            "encoder_fraction_of_ceiling": gf_enc / ceiling_g, "decoder_fraction_of_ceiling": gf_dec / ceiling_g,
            "rel_error_vs_onnxruntime_fp32": None if ref is None else float(np.abs(latents[name] - ref).max() / np.abs(ref).max()),
        })
    by = {r["name"]: r for r in out_rows}
    bf16 = by.get("openvino bf16")
    speedups = {}
    if bf16:
        for r in out_rows:
            if r["precision"] == "int8":
                speedups[r["name"]] = {
                    "vs_openvino_bf16_per_call": {"encoder": bf16["encoder_ms"] / r["encoder_ms"], "decoder": bf16["decoder_ms"] / r["decoder_ms"]},
                    "vs_openvino_bf16_whole_run": {k: bf16["latency_s"][k]["median"] / v["median"] for k, v in r["latency_s"].items()},
                }
    res = {"model": {"arch": arch.to_dict(), "fp32_build": str(args.fp32), "int8_build": str(args.int8),
                     "float_sites": {g: list(v["float_sites"]) for g, v in m8.data.get("quantization", {}).get("graphs", {}).items()}},
           "steps": N, "batch": B, "cfg_batch": 2 * B, "schedule": "uniform", "repeat": args.repeat, "threads": threads,
           "rows": out_rows, "int8_speedups": speedups, "ceilings": ceil, "load_average": load,
           "cpu": open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": ") if Path("/proc/cpuinfo").exists() else None}
    for r in out_rows:
        lat = ", ".join(f"ratio {k}: {v['median']:.2f} s" for k, v in r["latency_s"].items())
        print(f"{r['name']:40s} {lat} | enc {r['encoder_ms']:.0f} ms dec {r['decoder_ms']:.0f} ms | "
              f"{r['encoder_gflops']:.0f}/{r['decoder_gflops']:.0f} GFLOP/s = {100 * r['encoder_fraction_of_ceiling']:.0f}%/"
              f"{100 * r['decoder_fraction_of_ceiling']:.0f}% of {r['ceiling_gflops']:.0f} | err {r['rel_error_vs_onnxruntime_fp32']}")
    print(json.dumps(speedups, indent=1))
    print("ceilings", {k: (v if not isinstance(v, dict) else v.get("sources_gops", v)) for k, v in ceil.items()}, "load", load)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
