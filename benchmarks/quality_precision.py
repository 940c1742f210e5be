"""The quality benchmark with its precision axis and equal-call DP rows, as run for benchmarks/results/quality-precision.json.

    python benchmarks/quality_precision.py --build engines/digits --samples 100 --seeds 0,1 --steps 20 \
        --ratios 0,0.83 --precision-ratios 0,0.75,0.87 --precisions fp32,bf16,int8,fp8 \
        --json benchmarks/results/quality-precision.json --plot benchmarks/results/quality-precision.png

int8/fp8 builds of the same model are made into --work (or taken from --int8/--fp8). Until the
`ddt-bench quality` CLI grows these options, this script is how to run them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", type=Path, default=Path("engines/digits"))
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--ratios", default="0,0.5,0.66,0.75,0.8,0.83,0.87")
    ap.add_argument("--precision-ratios", default="0,0.75,0.87")
    ap.add_argument("--precisions", default="fp32,bf16,int8,fp8")
    ap.add_argument("--int8", type=Path)
    ap.add_argument("--fp8", type=Path)
    ap.add_argument("--work", type=Path)
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args()

    from rich.console import Console

    from ddt_export.bench import quality

    builds = {k: v for k, v in (("int8", args.int8), ("fp8", args.fp8)) if v is not None}
    started, load0 = time.perf_counter(), os.getloadavg()
    res = quality.run(args.build, samples=args.samples, steps=args.steps, seeds=tuple(int(s) for s in args.seeds.split(",")),
                      ratios=tuple(float(r) for r in args.ratios.split(",")),
                      precisions=tuple(args.precisions.split(",")),
                      precision_ratios=tuple(float(r) for r in args.precision_ratios.split(",")),
                      builds=builds, work_dir=args.work, progress=lambda m: print(m, flush=True))
    res["command"] = "python benchmarks/quality_precision.py " + " ".join(f"{k}" for k in os.sys.argv[1:])
    res["wall_seconds"] = round(time.perf_counter() - started, 1)
    res["load_average_start"] = list(load0)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=1))
    Console(width=260).print(quality.table(res))
    if args.plot:
        quality.plot(res, args.plot)


if __name__ == "__main__":
    main()
