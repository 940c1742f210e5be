"""`ddt-bench precision`: an int8 build against OpenVINO bf16 and onnxruntime fp32, timed in one process.

Rows (each a backend on a build of the same architecture):
- onnxruntime fp32 and OpenVINO bf16 (bf16 matmuls) on the fp32 build;
- onnxruntime int8 (the QDQ graphs fused into MatMulIntegerToFloat, MLAS VNNI kernels) and
  OpenVINO int8 (the same QDQ graphs, float parts in bf16) on the int8 build.
Each row samples whole runs with `sampler.sample` per sharing ratio (uniform schedules), runs
interleaved round-robin per repeat so load from other processes spreads over every row alike;
then per-call times of each graph at the CFG batch, read as GFLOP/s (architecture multiply-adds
x 2 / time) against matmul ceilings measured in the same process (ceiling.measure, ceiling.int8).
An int8 graph keeps some sites in float (its manifest says which), so its fraction of the int8
ceiling understates how well the int8 kernels themselves run.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .. import schedules
from ..errors import DDTError
from ..manifest import Manifest, read
from ..sampler import MAX_BATCH, SamplerSettings, sample
from . import ceiling, flops, machine

ROWS = (  # (name, precision its matmuls run in, backend, build: "fp32" or "int8", OpenVINO inference precision)
    ("onnxruntime fp32", "fp32", "onnxruntime", "fp32", None),
    ("openvino bf16", "bf16", "openvino", "fp32", "bf16"),
    ("onnxruntime int8", "int8", "onnxruntime", "int8", None),
    ("openvino int8", "int8", "openvino", "int8", "bf16"),
)
BASELINE = "openvino bf16"  # the yardstick: the fastest float path on this kind of CPU


@dataclass(frozen=True)
class Options:
    """What `ddt-bench precision` times: steps, batch, ratios (uniform schedules), repeats and per-call timings."""

    steps: int = 16
    batch: int = 1
    ratios: tuple[float, ...] = (0.0, 0.75)
    repeat: int = 3
    calls: int = 5  # per-call timings per graph
    seed: int = 0
    ceiling_size: int | None = None  # tests shrink the ceiling's matmul

    def validate(self) -> "Options":
        for r in self.ratios:
            schedules.Request(ratio=r, method="uniform")
        SamplerSettings(num_steps=self.steps).validate()
        if not 1 <= self.batch <= MAX_BATCH:
            raise DDTError(f"--batch must be between 1 and {MAX_BATCH} (got {self.batch})")
        if not 1 <= self.repeat <= 1000 or not 1 <= self.calls <= 1000:
            raise DDTError(f"--repeat and --calls must be between 1 and 1000 (got {self.repeat}, {self.calls})")
        return self


def check_builds(fp32_dir: str | Path, int8_dir: str | Path) -> tuple[Manifest, Manifest]:
    """Both builds read and verified, the first fp32, the second int8, of one architecture; else one line saying which."""
    m32, m8 = read(fp32_dir), read(int8_dir)
    if m32.precision != "fp32":
        raise DDTError(f"{fp32_dir} is not an fp32 build (its precision is {m32.precision}); the first folder must be fp32 (ddt-export build)")
    if m8.precision != "int8":
        hint = " (fp8 runs only on TensorRT; its CPU path is an emulation, not a speed)" if m8.precision == "fp8" else ""
        raise DDTError(f"{int8_dir} is not an int8 build (its precision is {m8.precision}); the second folder must be int8 "
                       f"(ddt-export build --precision int8){hint}")
    if m32.arch != m8.arch:
        raise DDTError(f"{fp32_dir} and {int8_dir} hold different architectures; build both from the same model")
    return m32, m8


@dataclass(frozen=True)
class Inputs:
    """What every row samples: the same settings, labels, noise, and each ratio's uniform steps."""

    settings: SamplerSettings
    labels: list[int]
    noise: np.ndarray
    null_class: int
    plans: list  # (ratio, recompute steps)

    @classmethod
    def make(cls, m32: Manifest, opts: Options) -> "Inputs":
        from ..pipeline import seeded_noise

        arch, N, B = m32.arch, opts.steps, opts.batch
        return cls(m32.sampler.with_overrides(num_steps=N), [(7 * i + 1) % arch.num_classes for i in range(B)],
                   seeded_noise(B, arch.latent_shape, opts.seed), m32.null_class,
                   [(float(r), schedules.Request(ratio=r, method="uniform").resolve(N)) for r in opts.ratios])

    def sample(self, runner, recompute, settings: SamplerSettings | None = None):
        return sample(runner, self.noise, self.labels, self.null_class, settings or self.settings, recompute)


def open_runners(m32: Manifest, m8: Manifest, batch: int, progress) -> list[tuple[str, str, object]]:
    """(name, precision, runner) for every row of ROWS, each at the CFG batch."""
    from ..backends import open_backend

    runners = []
    for name, prec, kind, build, ov in ROWS:
        progress(f"loading {name}")
        runners.append((name, prec, open_backend(kind, m32 if build == "fp32" else m8, precision=ov).runner(2 * batch)))
    return runners


def time_runs(runners: list, inputs: Inputs, opts: Options, progress) -> tuple[dict, dict]:
    """Whole runs, round-robin per repeat: ({(row, ratio): seconds per repeat}, {row: latents at the first ratio})."""
    from .latency import settle

    for name, _, r in runners:  # first calls compile and allocate
        progress(f"warming up {name}")
        inputs.sample(r, [0, 1, 2], inputs.settings.with_overrides(num_steps=3))
    times: dict[tuple[str, float], list[float]] = {}
    latents: dict[str, np.ndarray] = {}
    for rep in range(opts.repeat):
        for name, _, r in runners:
            for ratio, rec in inputs.plans:
                progress(f"repeat {rep + 1}/{opts.repeat}: {name}, ratio {ratio:g}")
                settle()
                t0 = time.perf_counter()
                x = inputs.sample(r, rec)
                times.setdefault((name, ratio), []).append(time.perf_counter() - t0)
                latents[name] = np.array(x, np.float32) if ratio == inputs.plans[0][0] else latents.get(name)
    return times, latents


def time_calls(runners: list, inputs: Inputs, opts: Options, progress) -> dict[str, tuple[float, float]]:
    """{row: (encoder ms, decoder ms)} per call at the CFG batch, medians."""
    from .latency import call_times, settle

    calls = {}
    for name, _, r in runners:
        progress(f"per-call times: {name}")
        settle()
        enc, dec = call_times(r, inputs.noise, inputs.labels, inputs.null_class, opts.calls)
        calls[name] = (1e3 * statistics.median(enc), 1e3 * statistics.median(dec))
    return calls


def measure_ceilings(opts: Options, progress) -> tuple[int, dict]:
    """(threads, the matmul ceilings at that many threads: fp32, bf16 and int8)."""
    progress("matmul ceilings")
    import torch

    threads = torch.get_num_threads()  # what onnxruntime and OpenVINO use by default here: one per core
    size = opts.ceiling_size or ceiling.SIZE
    ceil = ceiling.measure(threads, size=size)
    ceil["int8"] = ceiling.int8(threads, size=size)
    return threads, ceil


def make_row(name: str, prec: str, times: dict, calls: dict, ceil: dict, flop: dict, plans: list, latents: dict) -> dict:
    """One row: whole-run seconds per ratio, per-call ms, GFLOP/s against its precision's ceiling, latents vs the first row."""
    enc_ms, dec_ms = calls[name]
    top = ceil["int8"]["int8"] if prec == "int8" else ceil[prec]
    ref = latents[ROWS[0][0]]
    return {
        "name": name, "precision": prec,
        "latency_s": {f"{r:g}": {"median": statistics.median(times[(name, r)]), "runs": [round(v, 3) for v in times[(name, r)]]}
                      for r, _ in plans},
        "encoder_ms": enc_ms, "decoder_ms": dec_ms,
        "encoder_gflops": flop["encoder"] / enc_ms / 1e6, "decoder_gflops": flop["decoder"] / dec_ms / 1e6,
        "ceiling_gflops": top,
        "encoder_fraction_of_ceiling": flop["encoder"] / enc_ms / 1e6 / top,
        "decoder_fraction_of_ceiling": flop["decoder"] / dec_ms / 1e6 / top,
        "latents_rel_error_vs_onnxruntime_fp32": float(np.abs(latents[name] - ref).max() / np.abs(ref).max()),
    }


def against_baseline(rows: list[dict]) -> None:
    """Each row's speed-up over BASELINE, per call and per whole run, added to the row."""
    base = next(r for r in rows if r["name"] == BASELINE)
    for r in rows:
        r["vs_openvino_bf16"] = {"encoder_call": base["encoder_ms"] / r["encoder_ms"], "decoder_call": base["decoder_ms"] / r["decoder_ms"],
                                 "whole_run": {k: base["latency_s"][k]["median"] / v["median"] for k, v in r["latency_s"].items()}}


def run(fp32_dir: str | Path, int8_dir: str | Path, opts: Options, progress: Callable[[str], None] = lambda m: None) -> dict:
    """Every row of ROWS timed in this process (see the module doc); the JSON-ready result. Steps: open the runners,
    time whole runs, time the calls, measure the ceilings, then the rows' arithmetic."""
    opts.validate()
    m32, m8 = check_builds(fp32_dir, int8_dir)
    load_start = machine.load_average()
    arch, N, B = m32.arch, opts.steps, opts.batch
    inputs = Inputs.make(m32, opts)
    runners = open_runners(m32, m8, B, progress)
    times, latents = time_runs(runners, inputs, opts, progress)
    calls = time_calls(runners, inputs, opts, progress)
    threads, ceil = measure_ceilings(opts, progress)
    flop = {"encoder": 2 * flops.encoder_macs(arch).total * 2 * B, "decoder": 2 * flops.decoder_macs(arch).total * 2 * B}
    rows = [make_row(name, prec, times, calls, ceil, flop, inputs.plans, latents) for name, prec, _ in runners]
    against_baseline(rows)
    quant = m8.doc.quantization.graphs if m8.doc.quantization is not None else {}
    return {
        "model": m32.name, "arch": arch.to_dict(), "fp32_build": str(fp32_dir), "int8_build": str(int8_dir),
        "float_sites": {g: sorted(v.float_sites) for g, v in quant.items()},
        "per_token_sites": {g: sorted(v.per_token_sites or {}) for g, v in quant.items()},
        "steps": N, "batch": B, "cfg_batch": 2 * B, "schedule": "uniform", "encoder_calls": {f"{r:g}": len(rec) for r, rec in inputs.plans},
        "repeat": opts.repeat, "threads": threads, "rows": rows, "ceilings": ceil,
        "machine": machine.describe(), "load_average": {"start": load_start, "end": machine.load_average()},
    }


def table(res: dict):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    t = Table(title=f"{res['model']}: {res['steps']} steps, batch {res['batch']} (CFG {res['cfg_batch']}), {res['threads']} threads, "
                    f"median of {res['repeat']}")
    ratios = list(res["encoder_calls"])
    for col in ("row", *(f"ratio {k} (s)" for k in ratios), "encoder/call", "decoder/call", "GFLOP/s enc/dec",
                "of ceiling enc/dec", "vs OpenVINO bf16 per call enc/dec", "latents vs fp32"):
        t.add_column(col, justify="right")
    for r in res["rows"]:
        v = r["vs_openvino_bf16"]
        t.add_row(r["name"], *(f"{r['latency_s'][k]['median']:.2f}" for k in ratios), f"{r['encoder_ms']:.0f} ms", f"{r['decoder_ms']:.0f} ms",
                  f"{r['encoder_gflops']:.0f}/{r['decoder_gflops']:.0f}",
                  f"{100 * r['encoder_fraction_of_ceiling']:.0f}%/{100 * r['decoder_fraction_of_ceiling']:.0f}% of {r['ceiling_gflops']:.0f}",
                  f"{v['encoder_call']:.2f}x/{v['decoder_call']:.2f}x", f"{r['latents_rel_error_vs_onnxruntime_fp32']:.1e}")
    c, load = res["ceilings"], res["load_average"]
    lines = [f"ceilings measured now (GFLOP/s): fp32 {c['fp32']:.0f}, bf16 {c['bf16']:.0f}, int8 {c['int8']['int8']:.0f} "
             f"({', '.join(f'{k} {v}' for k, v in c['int8']['sources_gops'].items())})",
             "float sites of the int8 build: " + "; ".join(f"{g}: {', '.join(s) or 'none'}" for g, s in res["float_sites"].items())
             + "; per-token: " + "; ".join(f"{g}: {', '.join(s) or 'none'}" for g, s in res.get("per_token_sites", {}).items()),
             f"load average {load['start'][0] if load['start'] else '?'} -> {load['end'][0] if load['end'] else '?'}"]
    return Group(t, Text("\n".join(lines)))
