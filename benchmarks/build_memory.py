"""Peak memory of `ddt-export build` for a preset, per precision, and a check that the build runs.

    python benchmarks/build_memory.py --preset xl --res 256 --precision fp32 --precision fp16 \
        --out-root /tmp/ddt-builds --json benchmarks/results/build_memory.json

Each build runs as its own child process; os.wait4 returns that child's rusage, whose
ru_maxrss is its peak resident memory (Linux: KiB). After each build a 2-step sample runs
on onnxruntime from the folder, so a graph stored with external data (XL fp32's encoder
passes protobuf's 2 GB) is shown to load and run end to end, not just to be written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def peak_of(cmd: list[str]) -> tuple[int, float, float]:
    """(exit code, peak RSS in GiB, wall seconds) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 2**20, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="xl")
    ap.add_argument("--res", type=int, default=256)
    ap.add_argument("--precision", action="append", default=None, help="repeatable; default fp32 and fp16")
    ap.add_argument("--out-root", type=Path, required=True, help="where the builds go (each is GBs)")
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--keep", action="store_true", help="keep the builds (default: delete after the check)")
    args = ap.parse_args()
    results = []
    for precision in args.precision or ["fp32", "fp16"]:
        out = args.out_root / f"{args.preset}-{args.res}-{precision}"
        cmd = ["ddt-export", "build", "--preset", args.preset, "--res", str(args.res), "--random-weights",
               "--precision", precision, "--out", str(out)]
        print("$", " ".join(cmd), flush=True)
        code, peak, wall = peak_of(cmd)
        entry = {"preset": args.preset, "res": args.res, "precision": precision, "exit_code": code,
                 "peak_rss_gib": round(peak, 2), "build_seconds": round(wall, 1)}
        if code == 0:
            manifest = json.loads((out / "manifest.json").read_text())
            entry["files_gib"] = {f: round(e["bytes"] / 2**30, 3) for f, e in manifest["files"].items()}
            check = [sys.executable, "-c",
                     "import sys; from ddt_export import Pipeline; p = Pipeline.load(sys.argv[1], 'onnxruntime'); "
                     "r = p.generate([1], seed=0, num_steps=2); import numpy as np; assert np.isfinite(r.latents).all(); print('sampled', r.latents.shape)",
                     str(out)]
            c_code, c_peak, c_wall = peak_of(check)
            entry["sample_check"] = {"exit_code": c_code, "peak_rss_gib": round(c_peak, 2), "seconds": round(c_wall, 1)}
            if not args.keep:
                shutil.rmtree(out, ignore_errors=True)
        results.append(entry)
        print(json.dumps(entry), flush=True)
    data = {"benchmark": "build_memory", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine_memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1), "builds": results}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=2) + "\n")
    print(f"-> {args.json}")


if __name__ == "__main__":
    main()
