"""`ddt-run` with guidance-aware batches (the default) against `ddt-run --full-cfg` (the official batch at every call).

Each run is a fresh `ddt-run --json` process doing the whole job (open, compile, sample) on one build at the build's
own sampler settings (official: guidance 2 in the interval 0.3-1.0) with --steps N and no sharing (ratio 0). The two
modes alternate (skip, full, then full, skip, ...) so that a change in the machine's load hits both; the load average
(/proc/loadavg) is recorded before and after every run. Reported per mode, medians over the repeats: whole run (the
process's wall time), compile (the runner's set-up: the skip compiles the graphs at batch B as well as 2B), the loop,
and the time inside the decoder and encoder calls; and the speed-ups of the skip against the FLOP ideal of the same
plan (multiply-adds of every call, from ddt_export.bench.flops).

    python benchmarks/cpp_cfg_skip.py --build /tmp/b256 [--ddt-run runtime/build/ddt-run] [--steps 16]
        [--repeats 3] [--labels 1] [--precision f32] [--json benchmarks/results/cpp_cfg_skip-b256.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def loadavg() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def one_run(ddt_run: Path, build: Path, labels: str, steps: int, precision: str, full: bool, threads: int | None) -> dict:
    cmd = [str(ddt_run), str(build), "--labels", labels, "--steps", str(steps), "--seed", "0", "--backend", "openvino",
           "--inference-precision", precision, "--json"] + (["--full-cfg"] if full else []) + \
          (["--threads", str(threads)] if threads else [])
    before = loadavg()
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"ddt-run failed: {done.stderr.strip()}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return {**out, "whole_seconds": wall, "load_before": before, "load_after": loadavg()}


def flop_ideal(build: Path, steps: int) -> float:
    """MACs of the full-CFG run over MACs of the skip's run, at the build's settings and ratio 0."""
    from ddt_export.bench import flops
    from ddt_export.manifest import read
    from ddt_export.sampler import cfg_halves, guidance_scales

    m = read(build, verify=False)
    settings = m.sampler.with_overrides(num_steps=steps)
    enc, dec = flops.encoder_macs(m.arch).total, flops.decoder_macs(m.arch).total
    costs = ((enc, 2 * enc), (dec, 2 * dec))  # (conditional half, both halves) per sample
    scales = guidance_scales(settings)
    every = list(range(steps))
    return flops.run_cost(*costs, *cfg_halves(scales, every, True)) / flops.run_cost(*costs, *cfg_halves(scales, every, False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", type=Path, required=True)
    ap.add_argument("--ddt-run", type=Path, default=ROOT / "runtime" / "build" / "ddt-run")
    ap.add_argument("--labels", default="1")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--precision", default="f32")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    runs: dict[str, list[dict]] = {"skip": [], "full_cfg": []}
    for r in range(args.repeats):
        order = ["skip", "full_cfg"] if r % 2 == 0 else ["full_cfg", "skip"]
        for mode in order:
            res = one_run(args.ddt_run, args.build, args.labels, args.steps, args.precision, mode == "full_cfg", args.threads)
            runs[mode].append(res)
            print(f"repeat {r} {mode:8s} whole {res['whole_seconds']:6.1f} s  loop {res['loop_seconds']:6.1f} s  "
                  f"decoder {res['decode_seconds']:6.1f} s ({res['decode_calls'] - res['decode_cond_only_calls']} of "
                  f"{res['decode_calls']} calls on both halves)  load {res['load_before'][0]:.1f} -> {res['load_after'][0]:.1f}",
                  flush=True)

    def med(mode: str, key: str) -> float:
        return statistics.median(x[key] for x in runs[mode])

    keys = ("whole_seconds", "runner_seconds", "loop_seconds", "decode_seconds", "encode_seconds")
    summary = {mode: {k: med(mode, k) for k in keys} for mode in runs}
    for mode in runs:
        last = runs[mode][-1]
        summary[mode].update({k: last[k] for k in ("encode_calls", "decode_calls", "encode_cond_only_calls", "decode_cond_only_calls")})
    speedup = {k: summary["full_cfg"][k] / summary["skip"][k] for k in ("whole_seconds", "loop_seconds", "decode_seconds")}
    ideal = flop_ideal(args.build, args.steps)
    result = {
        "what": "ddt-run skip (default) vs --full-cfg, whole runs, OpenVINO, ratio 0, the build's sampler settings",
        "build": str(args.build), "steps": args.steps, "labels": args.labels, "precision": args.precision,
        "threads": args.threads, "repeats": args.repeats, "order": "interleaved, alternating which mode goes first",
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "summary_median": summary, "speedup_full_over_skip": speedup, "flop_ideal": ideal,
        "load_min_max": [min(x["load_before"][0] for m in runs.values() for x in m),
                         max(x["load_after"][0] for m in runs.values() for x in m)],
        "runs": runs,
    }
    print(f"speed-up of the skip: whole run {speedup['whole_seconds']:.3f}x, loop {speedup['loop_seconds']:.3f}x, "
          f"decoder calls {speedup['decode_seconds']:.3f}x; FLOP ideal {ideal:.3f}x")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
