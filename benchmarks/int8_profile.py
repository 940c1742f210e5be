"""Where an int8 graph's time goes in OpenVINO: per-layer performance counters, grouped by op and kernel (issue 24).

Compiles a build's encoder and decoder with PERF_COUNT, runs a few calls at one CFG batch, and sums
the per-layer real times by (layer type, kernel) and by what a layer is (int8 matmul, float matmul,
quantize/requantize, attention, element-wise, reorders). The share of time matters here, not the ms:
the run can share the machine.

    python benchmarks/int8_profile.py engines/ddt-b-256-int8 --json benchmarks/results/int8-profile-b256.json
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from ddt_export.bench.machine import cpu_name


def kind(layer_type: str, exec_type: str) -> str:
    """A coarse class of a profiled layer, from OpenVINO's layer type and the kernel it picked."""
    lt, et = layer_type.lower(), exec_type.lower()
    if lt.startswith(("fullyconnected", "matmul", "gemm", "convolution")):  # FullyConnectedQuantizedLegacy: the int8 ones
        return f"matmul {'int8' if ('i8' in et or 'u8' in et) else 'bf16' if 'bf16' in et else 'f32'}"
    if lt == "subgraph":  # OpenVINO's fused element-wise chains (norms, adaLN modulation, SiLU, requantisation)
        return f"fused element-wise ({'int8 in/out' if 'i8' in et else 'float'})"
    if "ref" in et:  # reference kernels: the slow path OpenVINO falls back to
        return f"reference kernels ({layer_type})"
    if lt in ("fakequantize", "quantize", "dequantize"):
        return "quantize / requantize"
    if "attention" in lt or lt == "softmax":
        return "attention / softmax"
    if lt in ("reorder", "convert", "transpose", "reshape", "concatenation", "split", "gather", "stridedslice"):
        return "layout / convert"
    return "element-wise / norm / other"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build")
    ap.add_argument("--precision", default="bf16", choices=["bf16", "f32"], help="OpenVINO inference precision of the float parts")
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()

    import openvino as ov

    from ddt_export.manifest import read

    build = Path(args.build)
    m = read(build)
    core = ov.Core()
    rng = np.random.default_rng(0)
    result = {"cpu": cpu_name(), "cores": os.cpu_count(), "openvino": ov.__version__, "build": str(build), "precision": m.precision,
              "inference_precision": args.precision, "calls": args.calls, "load_average": os.getloadavg(), "graphs": {}}
    for name in ("encoder", "decoder"):
        spec = m.graph(name)
        feeds = {}
        for t in spec.inputs:
            shape = t.concrete(2)
            feeds[t.name] = (np.arange(2) % m.arch.num_classes).astype(np.int64) if t.dtype == "int64" else \
                rng.uniform(0, 1, shape).astype(np.float32) if len(shape) == 1 else rng.standard_normal(shape).astype(np.float32)
        model = core.read_model(str(build / f"{name}.onnx"))
        model.reshape({k: list(v.shape) for k, v in feeds.items()})
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": args.precision, "PERF_COUNT": True,
                                                     "PERFORMANCE_HINT": "LATENCY"})
        req = compiled.create_infer_request()
        req.infer(feeds)
        by_type, by_kind = defaultdict(float), defaultdict(float)
        for _ in range(args.calls):
            req.infer(feeds)
            for p in req.profiling_info:
                us = p.real_time.total_seconds() * 1e6
                by_type[f"{p.node_type} [{p.exec_type}]"] += us / args.calls
                by_kind[kind(p.node_type, p.exec_type)] += us / args.calls
        total = sum(by_kind.values())
        result["graphs"][name] = {
            "total_ms": total / 1e3,
            "by_kind": {k: {"ms": v / 1e3, "share": v / total} for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])},
            "top_layer_types": [{"layer": k, "ms": v / 1e3, "share": v / total}
                                for k, v in sorted(by_type.items(), key=lambda kv: -kv[1])[:12]],
        }
        print(f"{name}: {total / 1e3:.1f} ms per call (sum of layers), {result['cpu']}")
        for k, v in result["graphs"][name]["by_kind"].items():
            print(f"  {k:28s} {v['ms']:7.1f} ms  {100 * v['share']:5.1f}%")
        for row in result["graphs"][name]["top_layer_types"][:8]:
            print(f"    {row['layer'][:60]:60s} {row['ms']:7.1f} ms  {100 * row['share']:5.1f}%")
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
