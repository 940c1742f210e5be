"""Throughput of `ddt-export sample` with 1 and 2 Ray workers, against the same shards in this
process without Ray; checks that every run writes the same bytes.

    python benchmarks/scale_throughput.py BUILD_DIR [--num-samples 1024] [--batch 32] [--json out.json]

Each configuration gets a fresh local Ray (as the CLI does); `samples/s` counts only the
sampling (first shard sent to last shard saved), `startup` is Ray plus the workers opening the
build. The machine's load average is recorded because on a shared box it dominates.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from ddt_export import __version__
from ddt_export.scale.run import SampleOptions, plan, sample_many
from ddt_export.scale.workers import ShardWorker


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--num-samples", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--sharing-ratio", type=float, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    job_args = dict(num_samples=args.num_samples, batch=args.batch, sharing_ratio=args.sharing_ratio, schedule="dp")
    rows = []

    torch.set_num_threads(1)
    job, _ = plan(SampleOptions(args.build, **job_args))
    worker = ShardWorker(job, threads=1, driver_version=__version__)
    assert worker.ready() is None, worker.ready()
    t0 = time.perf_counter()
    for shard in job.shards():
        worker.run(shard)
    seconds = time.perf_counter() - t0
    rows.append({"config": "in-process, no Ray, 1 thread", "samples_per_second": args.num_samples / seconds, "load": os.getloadavg()})
    print(f"{rows[-1]['config']:<34} {rows[-1]['samples_per_second']:7.1f} samples/s")

    hashes = set()
    for workers, cpus in ((1, 1.0), (2, 1.0), (1, 2.0)):
        with tempfile.TemporaryDirectory() as tmp:
            load = os.getloadavg()
            s = sample_many(SampleOptions(args.build, **job_args, out=Path(tmp) / "out", workers=workers, cpus_per_worker=cpus), show_progress=False)
            hashes.add(s.record["sha256"])
            rows.append({"config": f"Ray, {workers} worker(s) x {cpus:g} CPU", "workers": workers, "cpus_per_worker": cpus,
                         "samples_per_second": s.rate, "startup_seconds": s.startup_seconds, "load": load})
            print(f"{rows[-1]['config']:<34} {s.rate:7.1f} samples/s (startup {s.startup_seconds:.1f} s, load {load[0]:.1f})")
    print("all runs byte-identical:", len(hashes) == 1)
    if args.json:
        args.json.write_text(json.dumps({"num_samples": args.num_samples, "batch": args.batch, "identical": len(hashes) == 1,
                                         "cpus": os.cpu_count(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
