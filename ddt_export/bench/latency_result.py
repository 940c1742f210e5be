"""The latency benchmark's arithmetic: what a run measured (`Timings`) turned into the result (pure arithmetic, no timing).

The ideal speed-up of a schedule is what the per-call times (or the multiply-adds) allow, with
guidance-aware batches: a call on both CFG halves costs its full-batch time, one on the
conditional half its half-batch time (`CostModel`). Each graph's FLOP/s is read against the
matmul ceiling of the precision its backend computes in.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..metrics import rel_error
from ..sampler import SamplerSettings, cfg_halves, guidance_scales
from . import flops, machine


def stats(values_s: Sequence[float]) -> dict:
    """Milliseconds: median, min, max and every run (seconds in)."""
    ms = [v * 1e3 for v in values_s]
    return {"median": statistics.median(ms), "min": min(ms), "max": max(ms), "runs": [round(v, 3) for v in ms]}


@dataclass
class CallTimes:
    """Seconds per graph call, at the CFG batch and on its conditional half, and the loop's own seconds per step."""

    enc_s: list  # seconds per encoder call
    dec_s: list
    enc_half_s: list  # the same calls on the conditional half alone
    dec_half_s: list
    overhead_s: float  # the loop's own seconds per step
    ref_calls: dict  # reference name -> (encoder seconds, decoder seconds)


@dataclass
class RunTimes:
    """Whole-loop seconds per repeat, per ratio and per reference, and the latents each produced at ratio 0."""

    times: dict  # ratio -> whole-loop seconds per repeat (conditional half where guidance is off: the default)
    times_full: dict  # ratio -> the same with the official full CFG batch at every call
    cpu: dict  # ratio -> this process's CPU seconds per repeat
    ref_times: dict  # reference name -> seconds per repeat
    latents: np.ndarray | None = None  # the backend's at ratio 0 (first repeat)
    latents_full: np.ndarray | None = None  # the same with the full CFG batch
    ref_latents: dict = field(default_factory=dict)  # reference name -> its latents


@dataclass
class Timings:
    """What one `latency.run` measured, in seconds (and the latents it produced), before any arithmetic."""

    plans: list  # (ratio, recompute steps)
    calls: CallTimes
    runs: RunTimes
    ceil: list  # matmul ceilings before and after
    threads: int
    load: list  # load average before and after


def compute_precision(pipe) -> str:
    """The precision the backend's matmuls run in, which picks the ceiling a graph is judged by."""
    return "bf16" if pipe.backend.precision == "bf16" else "fp32"


@dataclass(frozen=True)
class CostModel:
    """What a run of N steps costs for given recompute steps: per call of each graph, (conditional half, both halves),
    in measured milliseconds (`calls`) or multiply-adds per sample (`macs`), at the steps guidance needs."""

    scales: list  # guidance w per step
    calls: tuple  # ((encoder half ms, encoder ms), (decoder half ms, decoder ms))
    macs: tuple  # ((encoder MACs, 2x), (decoder MACs, 2x))

    @classmethod
    def of(cls, arch, settings: SamplerSettings, calls: CallTimes) -> "CostModel":
        E_mac, D_mac = flops.encoder_macs(arch).total, flops.decoder_macs(arch).total
        E_ms, D_ms = stats(calls.enc_s)["median"], stats(calls.dec_s)["median"]
        E_half_ms, D_half_ms = stats(calls.enc_half_s)["median"], stats(calls.dec_half_s)["median"]
        return cls(guidance_scales(settings),
                   ((E_half_ms, E_ms), (D_half_ms, D_ms)), ((E_mac, 2 * E_mac), (D_mac, 2 * D_mac)))

    def cost(self, costs: tuple, steps, full_cfg: bool = False) -> float:
        return flops.run_cost(*costs, *cfg_halves(self.scales, steps, full_cfg))

    def ideal(self, costs: tuple, steps) -> float:
        """The speed-up over the encoder at every step that `costs` allow."""
        return self.cost(costs, list(range(len(self.scales)))) / self.cost(costs, steps)


def ratio_rows(raw: Timings, model: CostModel, schedule: str) -> list[dict]:
    """One row per sharing ratio: measured speed-ups against the ideals from the calls and from the FLOPs."""
    runs, N = raw.runs, len(model.scales)
    base = statistics.median(runs.times[0.0])
    ref_fp32 = statistics.median(runs.ref_times["torch-fp32"]) if "torch-fp32" in runs.ref_times else None
    rows = []
    for ratio, steps in raw.plans:
        K = len(steps)
        lat, lat_full = statistics.median(runs.times[ratio]), statistics.median(runs.times_full[ratio])
        ideal, flop_ideal = model.ideal(model.calls, steps), model.ideal(model.macs, steps)
        skip_ideal = model.cost(model.macs, steps, True) / model.cost(model.macs, steps, False)
        rows.append({
            "ratio": ratio,
            "effective_ratio": round(1 - K / N, 4),
            "schedule": schedule if ratio > 0 else "none",
            "encoder_calls": K,
            "recompute": list(steps),
            "latency_ms": stats(runs.times[ratio]),  # the default: conditional half alone where guidance is off
            "latency_full_cfg_ms": stats(runs.times_full[ratio]),  # the official full CFG batch at every call
            "predicted_ms": model.cost(model.calls, steps, False),  # from the per-call times alone
            "cpu_ms": statistics.median(runs.cpu[ratio]) * 1e3,  # process CPU time, all threads
            "cpu_speedup": statistics.median(runs.cpu[0.0]) / statistics.median(runs.cpu[ratio]),
            "speedup": base / lat,
            "ideal_speedup": ideal,
            "efficiency": base / lat / ideal,
            "flop_ideal_speedup": flop_ideal,
            "flop_efficiency": base / lat / flop_ideal,
            "skip_speedup": lat_full / lat,
            "skip_flop_ideal": skip_ideal,
            "skip_efficiency": lat_full / lat / skip_ideal,
            "vs_torch_fp32": ref_fp32 / lat if ref_fp32 else None,
        })
    return rows


def reference_rows(raw: Timings, N: int) -> list[dict]:
    """One row per PyTorch reference at ratio 0: its latency, calls, error vs torch fp32, and the backend's speed-up over it."""
    runs, base = raw.runs, statistics.median(raw.runs.times[0.0])
    out = []
    for name, times in runs.ref_times.items():
        e, d = raw.calls.ref_calls[name]
        out.append({
            "name": name,
            "ratio": 0.0,
            "encoder_calls": N,
            "latency_ms": stats(times),
            "encoder_ms": stats(e)["median"],
            "decoder_ms": stats(d)["median"],
            "error_vs_torch_fp32": rel_error(runs.ref_latents[name], runs.ref_latents["torch-fp32"]) if "torch-fp32" in runs.ref_latents else None,
            "runtime_speedup": statistics.median(times) / base,  # how much faster the backend is, same loop, no sharing
        })
    return out


def graph_rate(macs: flops.GraphMacs, ms: float, cfg_batch: int, best: dict, prec: str) -> dict:
    """A graph's call at the CFG batch as GFLOP/s and as a fraction of the matmul ceilings."""
    gflops = 2 * macs.total * cfg_batch / (ms / 1e3) / 1e9
    return {"ms": ms, "gmacs_per_call": macs.total * cfg_batch / 1e9, "gflops": gflops,
            "fraction_of_ceiling": gflops / best[prec], "fraction_of_fp32_ceiling": gflops / best["fp32"]}


def assemble(pipe, opts, settings: SamplerSettings, raw: Timings, build_dir) -> dict:
    """Turn raw seconds into the result: ideals, efficiencies, FLOP/s, references. `opts` is the run's latency.Options."""
    arch, N, B, calls, runs = pipe.arch, settings.num_steps, opts.batch, raw.calls, raw.runs
    E_mac, D_mac = flops.encoder_macs(arch), flops.decoder_macs(arch)
    enc, dec = stats(calls.enc_s), stats(calls.dec_s)
    model = CostModel.of(arch, settings, calls)
    best = {k: max(c[k] for c in raw.ceil) for k in ("fp32", "bf16")}
    prec, cfg_batch = compute_precision(pipe), 2 * B
    torch_fp32 = runs.ref_latents.get("torch-fp32")
    return {
        "benchmark": "latency",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build": str(build_dir),
        "model": pipe.manifest.name,
        "build_precision": pipe.manifest.precision,
        "backend": pipe.backend.name,
        "compute_precision": prec,
        "steps": N,
        "batch": B,
        "cfg_batch": cfg_batch,
        "schedule": opts.schedule,
        "repeat": opts.repeat,
        "threads": raw.threads,
        "sampler": settings.to_dict(),
        "encoder_ms": enc["median"],
        "decoder_ms": dec["median"],
        "calls_ms": {"encoder": enc, "decoder": dec, "encoder_half": stats(calls.enc_half_s), "decoder_half": stats(calls.dec_half_s)},
        "macs_per_sample": {"encoder": E_mac.to_dict(), "decoder": D_mac.to_dict()},
        "graphs": {"encoder": graph_rate(E_mac, enc["median"], cfg_batch, best, prec), "decoder": graph_rate(D_mac, dec["median"], cfg_batch, best, prec)},
        "ceiling_gflops": {"fp32": best["fp32"], "bf16": best["bf16"], "ceiling_precision": prec, "measurements": raw.ceil},
        "overhead": {"per_step_ms": calls.overhead_s * 1e3, "fraction_of_decoder": calls.overhead_s * 1e3 / dec["median"]},
        "latents_error_vs_torch_fp32": rel_error(runs.latents, torch_fp32) if torch_fp32 is not None else None,
        "skip_vs_full_cfg_error": rel_error(runs.latents, runs.latents_full),  # ratio 0, same noise: float rounding only
        "guided_steps": sum(w != 1.0 for w in model.scales),
        "rows": ratio_rows(raw, model, opts.schedule),
        "reference": reference_rows(raw, N),
        "machine": machine.describe(),
        "load_average": {"start": raw.load[0], "end": raw.load[1]},
    }
