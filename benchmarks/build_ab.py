"""Per-call A/B of builds of one model: each graph of each build on OpenVINO (bf16, and f32 with --f32; an int8 build's
per-token group from its manifest) and onnxruntime (as its backend opens it), CFG batch 2, interleaved rounds in one
process, median per row. Inputs: t uniform, classes spread, x and s standard normal.

    python benchmarks/build_ab.py --rounds 9 --f32 --json benchmarks/results/rope-stack-free-b256.json \
        "stack RoPE=engines/ddt-b-256" "stack-free RoPE=engines/ddt-b-256-rope"
    python benchmarks/build_ab.py --rounds 7 --json benchmarks/results/int8-b256-after-rope.json \
        "fp32 (stack-free RoPE)=engines/ddt-b-256-rope" "int8 (stack-free RoPE)=engines/ddt-b-256-int8-pt" ...
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from ddt_export.bench.machine import cpu_name


def openvino_call(core, path: Path, feeds: dict, hint: str, group: int | None):
    cfg = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
    if group is not None:
        cfg["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = group
    model = core.read_model(str(path))
    model.reshape({k: list(v.shape) for k, v in feeds.items()})
    request = core.compile_model(model, "CPU", cfg).create_infer_request()
    request.infer(feeds)
    return lambda: request.infer(feeds)


def onnxruntime_call(manifest, name: str, feeds: dict):
    from ddt_export.backends.onnxruntime_backend import session

    q = manifest.doc.quantization
    fold = q is not None and (q.graphs[name].per_token_nodes or 0) > 0
    s = session(manifest.path(manifest.graph(name).file), ["CPUExecutionProvider"], quantized=q is not None, fold_weights=fold)
    s.run(None, feeds)
    return lambda: s.run(None, feeds)


def interleaved(runs: dict, rounds: int, say=lambda r: None) -> dict:
    """{key: [seconds per round]}: each round calls every run once, in order, so load changes hit every row alike."""
    times = {k: [] for k in runs}
    for r in range(rounds):
        for k, call in runs.items():
            t0 = time.perf_counter()
            call()
            times[k].append(time.perf_counter() - t0)
        say(r)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("builds", nargs="+", help="LABEL=BUILD_FOLDER")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--f32", action="store_true", help="also OpenVINO f32")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()

    import openvino as ov

    from ddt_export.manifest import read

    builds = {label: read(path) for label, path in (b.split("=", 1) for b in args.builds)}
    core, rng = ov.Core(), np.random.default_rng(0)
    first = next(iter(builds.values()))
    runs = {}
    for name in ("encoder", "decoder"):
        feeds = {t.name: (np.arange(2) % first.arch.num_classes).astype(np.int64) if t.dtype == "int64"
                 else rng.uniform(0, 1, t.concrete(2)).astype(np.float32) if len(t.concrete(2)) == 1
                 else rng.standard_normal(t.concrete(2)).astype(np.float32) for t in first.graph(name).inputs}
        for label, m in builds.items():
            q = m.doc.quantization
            group = q.scheme.per_token.group_size if q is not None and q.scheme.per_token is not None else None
            path = m.path(m.graph(name).file)
            for hint in ("bf16", "f32") if args.f32 else ("bf16",):
                runs[(name, label, f"openvino {hint}")] = openvino_call(core, path, feeds, hint, group)
            runs[(name, label, "onnxruntime")] = onnxruntime_call(m, name, feeds)
    times = interleaved(runs, args.rounds)
    result = {"cpu": cpu_name(), "cores": os.cpu_count(), "openvino": ov.__version__, "load_average": os.getloadavg(),
              "rounds": args.rounds, "builds": {label: str(m.root) for label, m in builds.items()},
              "rows": [{"graph": k[0], "build": k[1], "runtime": k[2], "ms": 1e3 * statistics.median(v), "ms_all": [1e3 * x for x in v]}
                       for k, v in times.items()]}
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{result['cpu']}, load {result['load_average'][0]:.1f}, median of {args.rounds} interleaved rounds")
    for r in result["rows"]:
        print(f"{r['graph']:8s} {r['runtime']:15s} {r['build']:26s} {r['ms']:8.1f} ms")


if __name__ == "__main__":
    main()
