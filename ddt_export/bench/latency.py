"""`ddt-bench latency`: the sampling loop users run, timed per sharing ratio, against the ideals.

What is timed is `sampler.sample` on a runner from the backend registry, exactly as
`Pipeline.generate` runs it; the runner (buffers, bindings, compiled graphs) is made once,
outside the timed region. Runs are interleaved round-robin (every ratio and reference once
per repeat) so that load from other processes spreads over all rows alike.

Around the timed runs, in the same process:
- per-call latency of each graph at the run's CFG batch, which gives the ideal speed-up
  the measured per-call times allow: T(K) = N D + K E for K encoder calls in N steps;
- the FLOP ideal from the architecture's multiply-adds (flops.py);
- the per-step cost of the loop itself, timed with a runner whose graphs do nothing;
- the matmul ceiling (ceiling.py), so each graph's FLOP/s reads as a fraction of the machine;
- PyTorch eager references (fp32 and bf16 autocast) on the same weights, settings and noise.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .. import schedules
from ..backends import resolve_name
from ..backends.buffers import HostRunner
from ..errors import DDTError
from ..metrics import rel_error
from ..sampler import MAX_BATCH, SamplerSettings, cfg_halves, guidance_scales, sample, timesteps
from . import ceiling, flops, machine

REFERENCES = (("torch-fp32", None), ("torch-bf16-autocast", "bfloat16"))  # (name, autocast dtype)


@dataclass(frozen=True)
class Options:
    backend: str = "onnxruntime"
    ratios: tuple[float, ...] = schedules.PAPER_RATIOS
    steps: int = 50
    guidance: float | None = None  # None: the build's (the official configs: 2.0 in the interval 0.3-1.0)
    batch: int = 1
    schedule: str = "uniform"
    repeat: int = 3
    reference: bool = True
    seed: int = 0
    ceiling_size: int | None = None  # square matmul side for the ceiling [ceiling.SIZE]; tests shrink it

    def validate(self) -> "Options":
        """Every check that needs no build, so bad input fails before minutes of loading."""
        resolve_name(self.backend, None)  # unknown names fail here, in one line
        if not self.ratios:
            raise DDTError("give at least one sharing ratio, e.g. --ratios 0,0.5,0.75")
        for r in self.ratios:
            schedules.Request(ratio=r, method=self.schedule)
        SamplerSettings(num_steps=self.steps, guidance=1.0 if self.guidance is None else self.guidance).validate()
        if not 1 <= self.batch <= MAX_BATCH:
            raise DDTError(f"--batch must be between 1 and {MAX_BATCH} (got {self.batch})")
        if not 1 <= self.repeat <= 1000:
            raise DDTError(f"--repeat must be between 1 and 1000 (got {self.repeat})")
        return self

    @property
    def measured_ratios(self) -> list[float]:
        """The requested ratios, in order, with 0 (the baseline every speed-up divides) first if missing."""
        out = [] if 0.0 in self.ratios else [0.0]
        for r in self.ratios:
            if float(r) not in out:
                out.append(float(r))
        return out


def parse_ratios(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise DDTError(f"--ratios must be comma-separated numbers in [0, 1), e.g. 0,0.5,0.75 (got {text!r})") from None


def stats(values_s: Sequence[float]) -> dict:
    """Milliseconds: median, min, max and every run (seconds in)."""
    ms = [v * 1e3 for v in values_s]
    return {"median": statistics.median(ms), "min": min(ms), "max": max(ms), "runs": [round(v, 3) for v in ms]}


class NoopRunner(HostRunner):
    """A runner with the real runner's buffers and graphs that do nothing: what the loop alone costs."""

    def __init__(self, like):
        # host arrays of the real buffers' shapes (the loop's own cost, whatever device those live on)
        self.x, self.t, self.v = (np.zeros(tuple(a.shape), np.float32) for a in (like.x, like.t, like.v))
        self.y = np.zeros(tuple(like.y.shape), np.int64)
        self.s = None

    def encode(self, cond_only: bool = False) -> None:
        pass

    def decode(self, cond_only: bool = False) -> None:
        pass


def _timed(fn: Callable[[], object], runner=None) -> tuple[float, object]:
    """Seconds of fn(); GPU runners queue work on a stream, so the clock stops when it has finished."""
    t0 = time.perf_counter()
    out = fn()
    if runner is not None:
        runner.synchronize()
    return time.perf_counter() - t0, out


def _sample(runner, *args, full_cfg: bool = False):
    """`sample` on the runner's stream (a no-op scope on CPUs), as Pipeline.run runs it."""
    with runner.scope():
        return sample(runner, *args, full_cfg=full_cfg)


def _timed_cpu(fn: Callable[[], object], runner=None) -> tuple[float, float, object]:
    """(wall seconds, this process's CPU seconds over all its threads, result).

    Other processes stretch wall time but hardly this process's CPU time (the runtimes' idle
    threads block rather than spin), so the CPU-time speed-up tells sharing's effect apart
    from load when the machine is shared.
    """
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    if runner is not None:
        runner.synchronize()
    return time.perf_counter() - t0, time.process_time() - c0, out


def call_times(runner, noise: np.ndarray, labels: Sequence[int], null_class: int, repeat: int, cond_only: bool = False) -> tuple[list[float], list[float]]:
    """Seconds per encode() and decode() at the runner's batch (or its conditional half), on realistic inputs, alternating."""
    B = noise.shape[0]
    runner.x[:B] = runner.array(noise)
    runner.x[B:] = runner.array(noise)
    runner.t[:] = 0.5
    runner.y[:] = runner.array(np.array([null_class] * B + list(labels), dtype=np.int64))
    enc, dec = [], []
    for _ in range(repeat):
        enc.append(_timed(lambda: runner.encode(cond_only), runner)[0])
        dec.append(_timed(lambda: runner.decode(cond_only), runner)[0])
    return enc, dec


def loop_overhead(runner, noise, labels, null_class, settings: SamplerSettings, repeat: int = 5) -> float:
    """Seconds per step of `sample` itself (guidance, Euler update, buffer writes) with no-op graphs."""
    noop = NoopRunner(runner)
    every = list(range(settings.num_steps))  # the most Python per step: t is written at every step
    runs = [_timed(lambda: sample(noop, noise, labels, null_class, settings, every))[0] for _ in range(repeat + 1)]
    return statistics.median(runs[1:]) / settings.num_steps


def make_references(manifest) -> list[tuple[str, object]]:
    """(name, backend) for PyTorch eager on the build's own weights, one model shared by both."""
    import torch

    from ..backends.torch_backend import TorchBackend

    base = TorchBackend.from_build(manifest)
    out = []
    for name, dtype in REFERENCES:
        out.append((name, TorchBackend(base.model, autocast=getattr(torch, dtype) if dtype else None)))
    return out


def settle() -> None:
    """Let PyTorch's OpenMP workers stop spin-waiting (up to ~200 ms after a call) before timing
    another runtime, so they do not slow the next run (a bias that would favour whatever follows)."""
    time.sleep(0.5)


def run(build_dir: str | Path, opts: Options, progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Measure everything; returns the JSON-ready result (see module doc)."""
    import torch

    from ..pipeline import Pipeline, seeded_noise

    opts.validate()
    say = progress or (lambda msg, done, total: None)
    load_start = machine.load_average()
    pipe = Pipeline.load(build_dir, opts.backend)
    arch, N, B = pipe.arch, opts.steps, opts.batch
    settings = pipe.defaults.with_overrides(num_steps=N, guidance=opts.guidance)
    ratios = opts.measured_ratios
    say("scheduling", 0, 1)
    labels = [(7 * i + 1) % arch.num_classes for i in range(B)]
    plans = [(r, list(pipe.calibrated(pipe.plan(labels, sharing_ratio=r, schedule=opts.schedule, num_steps=N, guidance=opts.guidance)).recompute))
             for r in ratios]
    noise = seeded_noise(B, arch.latent_shape, opts.seed)
    null = pipe.null_class

    runner = pipe.backend.runner(2 * B)  # once: every timed run reuses its buffers and bindings
    references = make_references(pipe.manifest) if opts.reference else []
    ref_runners = [(name, backend.runner(2 * B)) for name, backend in references]
    threads = torch.get_num_threads()

    say("warming up", 0, 1)
    # OpenVINO's first few calls are slower (seen on XL: 4.5 s, then 2.6 s), so 3 steps, not 1
    warm = settings.with_overrides(num_steps=3)
    for _, r in [(None, runner)] + ref_runners:
        _sample(r, noise, labels, null, warm, [0, 1, 2])
    ceil_start = ceiling.measure(threads, opts.ceiling_size or ceiling.SIZE)
    settle()

    say("timing graph calls", 0, 1)
    enc_s, dec_s = call_times(runner, noise, labels, null, max(opts.repeat, 7))
    enc_half_s, dec_half_s = call_times(runner, noise, labels, null, max(opts.repeat, 7), cond_only=True)
    overhead_s = loop_overhead(runner, noise, labels, null, settings)

    # round-robin: each repeat times every ratio, then every reference, so load hits all alike
    times, cpu, times_full = {r: [] for r in ratios}, {r: [] for r in ratios}, {r: [] for r in ratios}
    ref_times = {name: [] for name, _ in ref_runners}
    ref_calls = {name: call_times(r, noise, labels, null, max(opts.repeat, 3)) for name, r in ref_runners}
    settle()
    latents, latents_full, ref_latents = None, None, {}
    total, done = opts.repeat * (2 * len(plans) + len(ref_runners)), 0
    every = list(range(N))
    for rep in range(opts.repeat):
        for ratio, steps in plans:
            say(f"{pipe.backend.name} ratio {ratio:g} (run {rep + 1}/{opts.repeat})", done, total)
            elapsed, cpu_s, x = _timed_cpu(lambda: _sample(runner, noise, labels, null, settings, steps), runner)
            times[ratio].append(elapsed)
            cpu[ratio].append(cpu_s)
            if ratio == 0.0 and latents is None:
                latents = np.array(runner.host(x), np.float32)
            done += 1
            say(f"{pipe.backend.name} ratio {ratio:g}, full CFG batch (run {rep + 1}/{opts.repeat})", done, total)
            elapsed, x = _timed(lambda: _sample(runner, noise, labels, null, settings, steps, full_cfg=True), runner)
            times_full[ratio].append(elapsed)
            if ratio == 0.0 and latents_full is None:
                latents_full = np.array(runner.host(x), np.float32)
            done += 1
        for name, r in ref_runners:
            say(f"{name} ratio 0 (run {rep + 1}/{opts.repeat})", done, total)
            elapsed, x = _timed(lambda: _sample(r, noise, labels, null, settings, every, full_cfg=True), r)  # what users run today
            ref_times[name].append(elapsed)
            ref_latents.setdefault(name, np.array(r.host(x), np.float32))
            done += 1
            settle()
    ceil_end = ceiling.measure(threads, opts.ceiling_size or ceiling.SIZE)
    say("done", total, total)

    raw = Timings(plans=plans, times=times, times_full=times_full, cpu=cpu, enc_s=enc_s, dec_s=dec_s, enc_half_s=enc_half_s,
                  dec_half_s=dec_half_s, overhead_s=overhead_s, ref_times=ref_times, ref_calls=ref_calls, latents=latents,
                  latents_full=latents_full, ref_latents=ref_latents, ceil=[ceil_start, ceil_end], threads=threads,
                  load=[load_start, machine.load_average()])
    return assemble(pipe, opts, settings, raw, build_dir)


@dataclass
class Timings:
    """What one `run` measured, in seconds (and the latents it produced), before any arithmetic."""

    plans: list  # (ratio, recompute steps)
    times: dict  # ratio -> whole-loop seconds per repeat (conditional half where guidance is off: the default)
    times_full: dict  # ratio -> the same with the official full CFG batch at every call
    cpu: dict  # ratio -> this process's CPU seconds per repeat
    enc_s: list  # seconds per encoder call
    dec_s: list
    enc_half_s: list  # the same calls on the conditional half alone
    dec_half_s: list
    overhead_s: float  # the loop's own seconds per step
    ref_times: dict  # reference name -> seconds per repeat
    ref_calls: dict  # reference name -> (encoder seconds, decoder seconds)
    latents: np.ndarray | None
    latents_full: np.ndarray | None
    ref_latents: dict
    ceil: list  # matmul ceilings before and after
    threads: int
    load: list  # load average before and after


def compute_precision(pipe) -> str:
    """The precision the backend's matmuls run in, which picks the ceiling a graph is judged by."""
    return "bf16" if pipe.backend.precision == "bf16" else "fp32"


def assemble(pipe, opts: Options, settings: SamplerSettings, raw: Timings, build_dir) -> dict:
    """Turn raw seconds into the result: ideals, efficiencies, FLOP/s, references (pure arithmetic)."""
    plans, times, cpu, enc_s, dec_s, overhead_s = raw.plans, raw.times, raw.cpu, raw.enc_s, raw.dec_s, raw.overhead_s
    ref_times, ref_calls, latents, ref_latents, ceil, threads, load = (raw.ref_times, raw.ref_calls, raw.latents, raw.ref_latents,
                                                                       raw.ceil, raw.threads, raw.load)
    arch, N, B = pipe.arch, settings.num_steps, opts.batch
    E_mac, D_mac = flops.encoder_macs(arch), flops.decoder_macs(arch)
    enc, dec = stats(enc_s), stats(dec_s)
    E_ms, D_ms = enc["median"], dec["median"]
    E_half_ms, D_half_ms = stats(raw.enc_half_s)["median"], stats(raw.dec_half_s)["median"]
    scales = guidance_scales(settings, timesteps(N, settings.last_step, settings.timeshift))
    macs = ((E_mac.total, 2 * E_mac.total), (D_mac.total, 2 * D_mac.total))  # (conditional half, both halves) per sample
    calls = ((E_half_ms, E_ms), (D_half_ms, D_ms))

    def cost(costs, steps, full_cfg: bool) -> float:
        return flops.run_cost(*costs, *cfg_halves(scales, steps, full_cfg))

    base = statistics.median(times[0.0])
    every = list(range(N))
    ref_fp32 = statistics.median(ref_times["torch-fp32"]) if "torch-fp32" in ref_times else None
    rows = []
    for ratio, steps in plans:
        K = len(steps)
        lat, lat_full = statistics.median(times[ratio]), statistics.median(raw.times_full[ratio])
        ideal = cost(calls, every, False) / cost(calls, steps, False)
        flop_ideal = cost(macs, every, False) / cost(macs, steps, False)
        skip_ideal = cost(macs, steps, True) / cost(macs, steps, False)
        rows.append({
            "ratio": ratio,
            "effective_ratio": round(1 - K / N, 4),
            "schedule": opts.schedule if ratio > 0 else "none",
            "encoder_calls": K,
            "recompute": list(steps),
            "latency_ms": stats(times[ratio]),  # the default: conditional half alone where guidance is off
            "latency_full_cfg_ms": stats(raw.times_full[ratio]),  # the official full CFG batch at every call
            "predicted_ms": cost(calls, steps, False),  # from the per-call times alone
            "cpu_ms": statistics.median(cpu[ratio]) * 1e3,  # process CPU time, all threads
            "cpu_speedup": statistics.median(cpu[0.0]) / statistics.median(cpu[ratio]),
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
    reference = []
    for name, runs in ref_times.items():
        e, d = ref_calls[name]
        reference.append({
            "name": name,
            "ratio": 0.0,
            "encoder_calls": N,
            "latency_ms": stats(runs),
            "encoder_ms": stats(e)["median"],
            "decoder_ms": stats(d)["median"],
            "error_vs_torch_fp32": rel_error(ref_latents[name], ref_latents["torch-fp32"]) if "torch-fp32" in ref_latents else None,
            "runtime_speedup": statistics.median(runs) / base,  # how much faster the backend is, same loop, no sharing
        })
    best = {k: max(c[k] for c in ceil) for k in ("fp32", "bf16")}
    prec = compute_precision(pipe)
    cfg_batch = 2 * B

    def graph(macs: flops.GraphMacs, ms: float) -> dict:
        gflops = 2 * macs.total * cfg_batch / (ms / 1e3) / 1e9
        return {"ms": ms, "gmacs_per_call": macs.total * cfg_batch / 1e9, "gflops": gflops,
                "fraction_of_ceiling": gflops / best[prec], "fraction_of_fp32_ceiling": gflops / best["fp32"]}

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
        "threads": threads,
        "sampler": settings.to_dict(),
        "encoder_ms": E_ms,
        "decoder_ms": D_ms,
        "calls_ms": {"encoder": enc, "decoder": dec, "encoder_half": stats(raw.enc_half_s), "decoder_half": stats(raw.dec_half_s)},
        "macs_per_sample": {"encoder": E_mac.to_dict(), "decoder": D_mac.to_dict()},
        "graphs": {"encoder": graph(E_mac, E_ms), "decoder": graph(D_mac, D_ms)},
        "ceiling_gflops": {"fp32": best["fp32"], "bf16": best["bf16"], "ceiling_precision": prec, "measurements": ceil},
        "overhead": {"per_step_ms": overhead_s * 1e3, "fraction_of_decoder": overhead_s * 1e3 / D_ms},
        "latents_error_vs_torch_fp32": rel_error(latents, ref_latents["torch-fp32"]) if "torch-fp32" in ref_latents else None,
        "skip_vs_full_cfg_error": rel_error(latents, raw.latents_full),  # ratio 0, same noise: float rounding only
        "guided_steps": sum(w != 1.0 for w in scales),
        "rows": rows,
        "reference": reference,
        "machine": machine.describe(),
        "load_average": {"start": load[0], "end": load[1]},
    }
