"""Per-step overhead of the C++ sampling loop against the Python one, on the same build.

Both loops drive the very same TorchScript encoder and decoder of a `--libtorch` build (the
C++ one through `ddt-run --backend libtorch`, so the runtime must be built with LibTorch; the
Python one through `ddt_export.sampler.sample` with a runner over `torch.jit.load`), on one
thread, with the same labels, noise and schedule. Each side times its encoder and decoder
calls; the overhead of a loop is what remains:

    overhead per step = (loop time - time inside encode() and decode()) / steps

A tiny model keeps the graphs cheap so that the loop's own cost is visible next to them.

    python benchmarks/cpp_loop_overhead.py --build DIR [--ddt-run runtime/build/ddt-run]
        [--labels 1,7] [--steps 250] [--repeats 5] [--json out.json] [--png out.png]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from ddt_export.manifest import read
from ddt_export.pipeline import seeded_noise
from ddt_export.sampler import sample

ROOT = Path(__file__).resolve().parents[1]


class TorchScriptRunner:
    """The C++ LibTorch backend's runner, in Python: numpy buffers shared with CPU tensors."""

    def __init__(self, build: Path, manifest, batch: int):
        sec = manifest.data["libtorch"]
        self.enc = torch.jit.load(str(build / sec["encoder"]["file"]))
        self.dec = torch.jit.load(str(build / sec["decoder"]["file"]))
        shape = (batch, *manifest.data["model"]["latent_shape"])
        self.x, self.v = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        self.t, self.y = np.zeros(batch, np.float32), np.zeros(batch, np.int64)
        self._x, self._t, self._y, self._v = map(torch.from_numpy, (self.x, self.t, self.y, self.v))
        self.s = None
        self.encode_seconds = self.decode_seconds = 0.0

    def encode(self, cond_only: bool = False) -> None:
        start = time.perf_counter()
        lo = len(self.x) // 2 if cond_only else 0  # cond_only: rows B:2B, as ddt-run's libtorch runner
        with torch.inference_mode():
            s = self.enc(self._x[lo:], self._t[lo:], self._y[lo:])
            if lo == 0:
                self.s = s
            else:
                if self.s is None:
                    self.s = torch.zeros((len(self.x), *s.shape[1:]), dtype=s.dtype)
                self.s[lo:].copy_(s)
        self.encode_seconds += time.perf_counter() - start

    def decode(self, cond_only: bool = False) -> None:
        start = time.perf_counter()
        lo = len(self.x) // 2 if cond_only else 0
        with torch.inference_mode():
            self._v[lo:].copy_(self.dec(self._x[lo:], self.s[lo:]))
        self.decode_seconds += time.perf_counter() - start

    def array(self, a: np.ndarray) -> np.ndarray:
        return a


def python_run(build: Path, labels: list[int], steps: int, seed: int) -> dict:
    m = read(build)
    settings = m.sampler.with_overrides(num_steps=steps)
    noise = seeded_noise(len(labels), m.arch.latent_shape, seed)
    runner = TorchScriptRunner(build, m, 2 * len(labels))
    start = time.perf_counter()
    x = sample(runner, noise, labels, m.null_class, settings, list(range(steps)))
    loop = time.perf_counter() - start
    return {"latents": np.asarray(x), "loop_seconds": loop, "encode_seconds": runner.encode_seconds,
            "decode_seconds": runner.decode_seconds}


def cpp_run(ddt_run: Path, build: Path, labels: list[int], steps: int, seed: int, out: Path) -> dict:
    cmd = [str(ddt_run), str(build), "--backend", "libtorch", "--labels", ",".join(map(str, labels)), "--seed", str(seed),
           "--steps", str(steps), "--threads", "1", "--json", "--save-latents", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    return {**summary, "latents": np.load(out)}


def per_step(run: dict, steps: int) -> dict:
    graphs = run["encode_seconds"] + run["decode_seconds"]
    return {"total_ms": 1e3 * run["loop_seconds"] / steps, "graphs_ms": 1e3 * graphs / steps,
            "overhead_us": 1e6 * (run["loop_seconds"] - graphs) / steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", type=Path, required=True, help="a build made with `ddt-export build --libtorch`")
    ap.add_argument("--ddt-run", type=Path, default=ROOT / "runtime" / "build" / "ddt-run")
    ap.add_argument("--labels", default="1,7")
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the numbers here")
    ap.add_argument("--png", type=Path, help="bar chart of the per-step loop overhead")
    args = ap.parse_args()
    torch.set_num_threads(1)
    labels = [int(v) for v in args.labels.split(",")]
    tmp = Path(f"/tmp/cpp_loop_overhead_{args.steps}.npy")

    python_run(args.build, labels, min(args.steps, 10), args.seed)  # JIT profiling runs, outside the timing
    runs = {"python": [], "cpp": []}
    for _ in range(args.repeats):  # interleaved, so that load from other processes hits both alike
        runs["python"].append(python_run(args.build, labels, args.steps, args.seed))
        runs["cpp"].append(cpp_run(args.ddt_run, args.build, labels, args.steps, args.seed, tmp))
    diff = float(np.abs(runs["python"][0]["latents"] - runs["cpp"][0]["latents"]).max())
    report = {"build": str(args.build), "labels": labels, "steps": args.steps, "repeats": args.repeats, "threads": 1,
              "max_abs_difference_cpp_vs_python": diff}
    for side, rs in runs.items():
        stats = [per_step(r, args.steps) for r in rs]
        report[side] = {k: statistics.median(s[k] for s in stats) for k in stats[0]}
    report["overhead_saved_us_per_step"] = report["python"]["overhead_us"] - report["cpp"]["overhead_us"]
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 2.6), dpi=120)
        sides = ["python", "cpp"]
        overhead = [report[s]["overhead_us"] for s in sides]
        ax.barh(["Python loop", "C++ loop"], overhead, color=["#4c72b0", "#dd8452"])
        for i, s in enumerate(sides):
            ax.text(overhead[i], i, f" {overhead[i]:.0f} us (graphs: {report[s]['graphs_ms']:.1f} ms)", va="center", fontsize=8)
        ax.set_xlim(0, 1.6 * max(overhead))
        ax.set(xlabel="loop overhead per step, us (time outside encoder/decoder)",
               title=f"{args.steps} steps, batch {len(labels)}, 1 thread, median of {args.repeats}")
        ax.title.set_fontsize(9)
        fig.tight_layout()
        fig.savefig(args.png)


if __name__ == "__main__":
    main()
