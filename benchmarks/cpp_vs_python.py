"""`ddt-run` (C++) against the Python runtime on the same build, backend (OpenVINO) and precision.

Each side runs as a fresh process doing the whole job, the way a user runs it: open the build
(manifest, every file's sha256, read the ONNX graphs), compile them for the CFG batch, draw the
seeded noise and run the sampling loop. The C++ side is `ddt-run --json`; the Python side is this
script re-invoked as a child (`--child`), which times the same phases with
`ddt_export.manifest.read`, `OpenVinoBackend(manifest, precision=...)` and `ddt_export.sampler.sample`
over a runner that times its encode()/decode() calls as the C++ TimedRunner does. Reported per
side and precision (medians over interleaved repeats):

    whole run      the process's wall time, start to exit (imports and all)
    open, compile  opening the build; compiling the graphs for the batch
    loop           the sampling loop; graphs = time inside encode()/decode()
    overhead/step  (loop - graphs) / steps, and as a fraction of one decoder call

    python benchmarks/cpp_vs_python.py --build /tmp/b256 [--ddt-run runtime/build/ddt-run]
        [--labels 1] [--steps 16] [--repeats 3] [--precisions f32,bf16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY_PRECISION = {"f32": "fp32", "bf16": "bf16"}  # ddt-run's names -> ddt_export's OpenVinoBackend's


class TimedRunner:
    """Times a runner's encode()/decode(); everything else goes to the runner itself."""

    def __init__(self, runner):
        self._runner = runner
        self.encode_seconds = self.decode_seconds = 0.0
        self.encode_calls = self.decode_calls = 0

    def __getattr__(self, name):
        return getattr(self._runner, name)

    def encode(self, cond_only: bool = False) -> None:
        start = time.perf_counter()
        self._runner.encode(cond_only)
        self.encode_seconds += time.perf_counter() - start
        self.encode_calls += 1

    def decode(self, cond_only: bool = False) -> None:
        start = time.perf_counter()
        self._runner.decode(cond_only)
        self.decode_seconds += time.perf_counter() - start
        self.decode_calls += 1


def child(build: Path, labels: list[int], steps: int, seed: int, precision: str, out: Path) -> None:
    """The Python runtime's run, phase by phase; prints one JSON line."""
    import numpy as np

    from ddt_export.backends.openvino_backend import OpenVinoBackend
    from ddt_export.manifest import read
    from ddt_export.pipeline import seeded_noise
    from ddt_export.sampler import sample

    start = time.perf_counter()
    m = read(build)  # manifest + every file's sha256
    backend = OpenVinoBackend(m, precision=PY_PRECISION[precision])
    opened = time.perf_counter()
    runner = TimedRunner(backend.runner(2 * len(labels)))
    compiled = time.perf_counter()
    settings = m.sampler.with_overrides(num_steps=steps)
    noise = seeded_noise(len(labels), m.arch.latent_shape, seed)
    loop_start = time.perf_counter()
    x = sample(runner, noise, labels, m.null_class, settings, list(range(steps)))
    loop = time.perf_counter() - loop_start
    np.save(out, np.asarray(x, np.float32))
    print(json.dumps({"open_seconds": opened - start, "runner_seconds": compiled - opened, "loop_seconds": loop,
                      "encode_seconds": runner.encode_seconds, "decode_seconds": runner.decode_seconds,
                      "encode_calls": runner.encode_calls, "decode_calls": runner.decode_calls}))


def timed_process(cmd: list[str]) -> tuple[dict, float]:
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {result.stderr.strip()[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1]), wall


def summarise(runs: list[tuple[dict, float]], steps: int) -> dict:
    rows = []
    for summary, wall in runs:
        graphs = summary["encode_seconds"] + summary["decode_seconds"]
        overhead = (summary["loop_seconds"] - graphs) / steps
        decoder_call = summary["decode_seconds"] / summary["decode_calls"]
        rows.append({"whole_run_seconds": wall, "open_seconds": summary["open_seconds"],
                     "compile_seconds": summary["runner_seconds"], "loop_seconds": summary["loop_seconds"],
                     "graphs_seconds": graphs, "decoder_call_seconds": decoder_call,
                     "overhead_us_per_step": 1e6 * overhead, "overhead_fraction_of_decoder_call": overhead / decoder_call})
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]} | {"runs": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", type=Path, required=True, help="a plain build folder (ONNX graphs)")
    ap.add_argument("--ddt-run", type=Path, default=ROOT / "runtime" / "build" / "ddt-run")
    ap.add_argument("--labels", default="1")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--precisions", default="f32,bf16")
    ap.add_argument("--json", type=Path, help="write the numbers here")
    ap.add_argument("--child", choices=list(PY_PRECISION), help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    labels = [int(v) for v in args.labels.split(",")]
    if args.child:
        child(args.build, labels, args.steps, args.seed, args.child, args.out)
        return

    import numpy as np

    report = {"build": str(args.build), "labels": labels, "steps": args.steps, "seed": args.seed, "repeats": args.repeats,
              "backend": "openvino", "threads": "default (all cores)", "cpu": platform.processor() or platform.machine(),
              "cores": os.cpu_count(), "load_average_before": os.getloadavg(), "results": {}}
    tmp = Path(f"/tmp/cpp_vs_python_{os.getpid()}")
    tmp.mkdir(exist_ok=True)
    for precision in args.precisions.split(","):
        cpp_out, py_out = tmp / f"cpp-{precision}.npy", tmp / f"py-{precision}.npy"
        cpp_cmd = [str(args.ddt_run), str(args.build), "--labels", args.labels, "--seed", str(args.seed), "--steps",
                   str(args.steps), "--backend", "openvino", "--inference-precision", precision, "--json",
                   "--save-latents", str(cpp_out)]
        py_cmd = [sys.executable, __file__, "--build", str(args.build), "--labels", args.labels, "--seed", str(args.seed),
                  "--steps", str(args.steps), "--child", precision, "--out", str(py_out)]
        runs = {"cpp": [], "python": []}
        for i in range(args.repeats):  # interleaved, so that load from other processes hits both alike
            for side, cmd in (("cpp", cpp_cmd), ("python", py_cmd)) if i % 2 == 0 else (("python", py_cmd), ("cpp", cpp_cmd)):
                runs[side].append(timed_process(cmd))
                print(f"{precision} {side} run {i + 1}: {runs[side][-1][1]:.1f} s", file=sys.stderr, flush=True)
        a, b = np.load(cpp_out), np.load(py_out)
        result = {side: summarise(rs, args.steps) for side, rs in runs.items()}
        result["max_abs_difference_cpp_vs_python"] = float(np.abs(a - b).max())
        result["relative_l2_cpp_vs_python"] = float(np.linalg.norm(a - b) / np.linalg.norm(b))
        result["whole_run_speedup"] = result["python"]["whole_run_seconds"] / result["cpp"]["whole_run_seconds"]
        result["loop_speedup"] = result["python"]["loop_seconds"] / result["cpp"]["loop_seconds"]
        report["results"][precision] = result
    report["load_average_after"] = os.getloadavg()
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()

    brief = {p: {side: {k: v for k, v in r[side].items() if k != "runs"} for side in ("cpp", "python")}
             | {k: v for k, v in r.items() if k not in ("cpp", "python")} for p, r in report["results"].items()}
    print(json.dumps({**{k: v for k, v in report.items() if k != "results"}, "results": brief}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
