"""Which compiled CPU path is fastest: per-call latency of each graph, every candidate in one process.

    python benchmarks/cpu_paths.py engines/ddt-b-256 --rounds 5 --json benchmarks/results/cpu_paths-b256.json

Candidates, timed round-robin (each round calls every candidate once, so load from other
processes hits all alike), at CFG batch 2 (user batch 1):
  onnxruntime             the backend as shipped (intra-op threads block when idle)
  onnxruntime-spin        the same with onnxruntime's default spinning threads
  onnxruntime-static      spinning off and the batch axis fixed (free dimension override)
  openvino-fp32 / -bf16   the openvino backend with fp32 or bf16 inference precision
  torch-fp32 / -bf16      PyTorch eager, fp32 and bf16 autocast (what users run today)
Also reports each path's error against torch fp32 on the same inputs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np


def ort_variant(manifest, spin: bool, static_batch: int | None):
    """An onnxruntime backend whose sessions differ from the shipped ones only in the named options."""
    import onnxruntime as ort

    from ddt_export.backends import onnxruntime_backend as ob

    def session(path, providers, threads=None):
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        if static_batch:
            opts.add_free_dimension_override_by_name("batch", static_batch)
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    shipped = ob.session
    ob.session = session
    try:
        return ob.OnnxRuntimeBackend(manifest)
    finally:
        ob.session = shipped


def main() -> None:
    import torch

    from ddt_export.backends import open_backend
    from ddt_export.backends.openvino_backend import OpenVinoBackend
    from ddt_export.backends.torch_backend import TorchBackend
    from ddt_export.bench import machine
    from ddt_export.manifest import read

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build", type=Path)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=2, help="CFG batch (twice the user batch)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    m = read(args.build, verify=False)
    B = args.batch
    tb = TorchBackend.from_build(m)
    backends = {
        "onnxruntime": open_backend("onnxruntime", m),
        "onnxruntime-spin": ort_variant(m, spin=True, static_batch=None),
        "onnxruntime-static": ort_variant(m, spin=False, static_batch=B),
        "openvino-fp32": OpenVinoBackend(m, precision="fp32"),
        "openvino-bf16": OpenVinoBackend(m, precision="bf16"),
        "torch-fp32": tb,
        "torch-bf16": TorchBackend(tb.model, autocast=torch.bfloat16),
    }
    runners = {k: b.runner(B) for k, b in backends.items()}
    g = np.random.default_rng(0)
    x = g.standard_normal(runners["onnxruntime"].x.shape).astype(np.float32)
    labels = np.array([m.null_class, 1] * (B // 2), np.int64)
    for r in runners.values():  # same inputs everywhere; one warm-up call each
        r.x[:] = x
        r.t[:] = 0.5
        r.y[:] = labels
        r.encode()
        r.decode()
    ref = runners["torch-fp32"]
    s_ref, v_ref = ref.host(ref.s), np.array(ref.v)
    times = {k: ([], []) for k in runners}
    load0 = machine.load_average()
    for _ in range(args.rounds):
        for k, r in runners.items():
            t0 = time.perf_counter()
            r.encode()
            t1 = time.perf_counter()
            r.decode()
            times[k][0].append(t1 - t0)
            times[k][1].append(time.perf_counter() - t1)
    rows = []
    for k, r in runners.items():
        enc, dec = (1e3 * np.array(v) for v in times[k])
        rows.append({
            "path": k,
            "encoder_ms": {"median": float(np.median(enc)), "min": float(enc.min())},
            "decoder_ms": {"median": float(np.median(dec)), "min": float(dec.min())},
            "encoder_error": float(np.abs(r.host(r.s) - s_ref).max() / np.abs(s_ref).max()),
            "decoder_error": float(np.abs(np.asarray(r.v) - v_ref).max() / np.abs(v_ref).max()),  # on its own s
        })
    for row in rows:
        print(f"{row['path']:20s} encoder {row['encoder_ms']['median']:7.0f} ms (min {row['encoder_ms']['min']:6.0f})  "
              f"decoder {row['decoder_ms']['median']:7.0f} ms (min {row['decoder_ms']['min']:6.0f})  "
              f"error vs torch fp32: s {row['encoder_error']:.1e}, v {row['decoder_error']:.1e}")
    result = {"benchmark": "cpu_paths", "build": str(args.build), "cfg_batch": B, "rounds": args.rounds,
              "torch_threads": torch.get_num_threads(), "machine": machine.describe(),
              "load_average": {"start": load0, "end": machine.load_average()}, "paths": rows,
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(f"load average {load0} -> {result['load_average']['end']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
