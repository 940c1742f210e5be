"""End-to-end gain of a few-step solver over the official protocol, measured in one process (issue 22).

The official FID protocol samples with Euler at 250 steps, the encoder at every step and the full
CFG batch at every call, in eager PyTorch fp32. This times that run (the build's own weights in
eager PyTorch, our loop around them: the loop is <1% of a call) against the configurations the
frontier on the bundled model found within +3% of it, on every CPU runtime the build has, all on
the same noise and labels, interleaved (each repeat times every row once), and reports each row's
wall time and its gain over the reference as one ratio. Sampling only: both sides would add the
same VAE decode per image (random-weight builds carry none).

    ddt-export build --preset b --res 256 --random-weights --out engines/ddt-b-256
    python benchmarks/solver_speedup.py engines/ddt-b-256 --config adams2:16:0 --config adams2:16:0.75 \
        --json benchmarks/results/solver-speedup-b256.json

Random weights: speed does not depend on them, and quality is judged on the bundled model instead.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

RUNTIMES = (("onnxruntime", "fp32", {}), ("openvino", "fp32", {"precision": "fp32"}), ("openvino", "bf16", {"precision": "bf16"}))


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def parse_config(text: str) -> dict:
    """"adams2:16:0.75" -> sampler adams order 2, 16 steps, uniform sharing at 0.75 ("euler:250:0" the protocol)."""
    from ddt_export.bench.quality_rows import Solver

    name, steps, ratio = text.split(":")
    s = Solver.parse(name, int(steps))
    return {"name": text, "sampler": s.sampler, "order": s.order, "num_steps": s.steps, "sharing_ratio": float(ratio)}


def timed(pipe, labels, noise, config: dict, full_cfg: bool = False) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) of one whole run: under other load the CPU time still shows the work."""
    kw = {k: config[k] for k in ("sampler", "order", "num_steps")}
    ratio = config["sharing_ratio"]
    start, cpu = time.perf_counter(), time.process_time()
    r = pipe.generate(labels, noise=noise, sharing_ratio=ratio or None, schedule="uniform", full_cfg=full_cfg, **kw)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    if not np.isfinite(r.latents).all():
        raise SystemExit(f"{config['name']}: non-finite latents")
    return seconds, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build")
    ap.add_argument("--config", action="append", required=True, help="SOLVER:STEPS:RATIO, e.g. adams2:16:0.75 (repeatable)")
    ap.add_argument("--int8", help="an int8 build of the same model: its onnxruntime and OpenVINO rows too")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per row (the reference: --reference-repeat)")
    ap.add_argument("--reference-repeat", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="threads per runtime [default: each runtime's own]; 1 keeps "
                    "OpenMP from spin-waiting on a loaded machine, and makes CPU time a fair measure there")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()

    from ddt_export.pipeline import Pipeline, seeded_noise

    configs = [parse_config(c) for c in args.config]
    threads = {} if args.threads is None else {"threads": args.threads}
    ref_pipe = Pipeline.load(args.build, backend="torch", **threads)
    labels, noise = [207 % ref_pipe.arch.num_classes], seeded_noise(1, ref_pipe.arch.latent_shape, 0)  # 207: golden retriever
    reference = {"name": "euler:250:0 (official protocol, PyTorch eager fp32, full CFG batch)", "sampler": "euler", "order": 1,
                 "num_steps": 250, "sharing_ratio": 0.0}
    pipes = {(b, p): Pipeline.load(args.build, backend=b, **o, **threads) for b, p, o in RUNTIMES}
    if args.int8:
        pipes |= {(b, "int8"): Pipeline.load(args.int8, backend=b, **threads) for b in ("onnxruntime", "openvino")}
    rows = {(b, p, c["name"]): [] for (b, p) in pipes for c in configs}
    ref_times: list[float] = []
    for (b, p), pipe in pipes.items():  # warm-up: first calls compile and allocate
        timed(pipe, labels, noise, {**configs[0], "num_steps": 2})
    load = os.getloadavg()
    for rep in range(max(args.repeat, args.reference_repeat)):
        if rep < args.reference_repeat:
            print(f"[{rep + 1}] reference: Euler 250, PyTorch eager fp32 ...", flush=True)
            ref_times.append(timed(ref_pipe, labels, noise, reference, full_cfg=True))
            print(f"    {ref_times[-1][0]:.1f} s", flush=True)
        if rep < args.repeat:
            for (b, p), pipe in pipes.items():
                for c in configs:
                    rows[(b, p, c["name"])].append(timed(pipe, labels, noise, c))
                    print(f"[{rep + 1}] {b} {p} {c['name']}: {rows[(b, p, c['name'])][-1][0]:.2f} s", flush=True)
    ref, ref_cpu = (statistics.median(t[k] for t in ref_times) for k in (0, 1))
    out = {"cpu": cpu_name(), "threads": os.cpu_count(), "load_average_at_start": load, "load_average_at_end": os.getloadavg(),
           "build": args.build, "arch": ref_pipe.arch.__dict__ if hasattr(ref_pipe.arch, "__dict__") else str(ref_pipe.arch),
           "settings": ref_pipe.defaults.to_dict(), "batch": 1, "threads_per_runtime": args.threads or "each runtime's default",
           "reference": {**reference, "seconds": [t[0] for t in ref_times], "cpu_seconds": [t[1] for t in ref_times],
                         "median_s": ref, "median_cpu_s": ref_cpu},
           "rows": [row(b, p, next(c for c in configs if c["name"] == name), ts, ref, ref_cpu) for (b, p, name), ts in rows.items()],
           "what": "wall (and this process's CPU) seconds of one whole sampling run (batch 1, latents only); gain = reference "
                   "median / row median, measured in this one process, rows interleaved"}
    Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    print(f"reference {ref:.1f} s on {out['cpu']}")
    for r in out["rows"]:
        print(f"{r['backend']:>12} {r['precision']:>5} {r['name']:>16}: {r['median_s']:6.2f} s  {r['gain_over_reference']:6.1f}x"
              f"  (CPU time {r['cpu_gain_over_reference']:.1f}x)")


def row(backend: str, precision: str, config: dict, times: list, ref: float, ref_cpu: float) -> dict:
    wall, cpu = statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)
    return {"backend": backend, "precision": precision, **config, "seconds": [t[0] for t in times], "cpu_seconds": [t[1] for t in times],
            "median_s": wall, "median_cpu_s": cpu, "gain_over_reference": ref / wall, "cpu_gain_over_reference": ref_cpu / cpu}


if __name__ == "__main__":
    main()
