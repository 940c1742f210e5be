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
from ..sampler import MAX_BATCH, SamplerSettings, sample
from . import ceiling, machine
from .latency_result import CallTimes, RunTimes, Timings, assemble

REFERENCES = (("torch-fp32", None), ("torch-bf16-autocast", "bfloat16"))  # (name, autocast dtype)


@dataclass(frozen=True)
class Options:
    """What `ddt-bench latency` measures (backend, ratios and schedule, steps, guidance, batch, repeats), validated once."""

    backend: str = "onnxruntime"
    ratios: tuple[float, ...] = schedules.PAPER_RATIOS
    steps: int = 50
    guidance: float | None = None  # None: the build's (the official configs: 2.0 in the interval 0.3-1.0)
    sampler: str | None = None  # None: the build's; the PyTorch references run the same sampler
    order: int | None = None
    batch: int = 1
    schedule: str = "uniform"
    repeat: int = 3
    reference: bool = True
    seed: int = 0
    labels: tuple[int, ...] | None = None  # class ids, used in turn to fill the batch; None: 1, 8, 15, ...
    ceiling_size: int | None = None  # square matmul side for the ceiling [ceiling.SIZE]; tests shrink it

    def validate(self) -> "Options":
        """Every check that needs no build, so bad input fails before minutes of loading."""
        resolve_name(self.backend, None)  # unknown names fail here, in one line
        if not self.ratios:
            raise DDTError("give at least one sharing ratio, e.g. --ratios 0,0.5,0.75")
        for r in self.ratios:
            schedules.Request(ratio=r, method=self.schedule)
        SamplerSettings().with_overrides(num_steps=self.steps, guidance=self.guidance, sampler=self.sampler, order=self.order)
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


def parse_ratios(text: str, what: str = "--ratios") -> tuple[float, ...]:
    """Sharing ratios as decimals.py reads every number (float() would take 1_0, full-width digits and nan); the range is
    checked where they are used (schedules.Request)."""
    from ..decimals import decimal_list

    return tuple(decimal_list(text, what, "0,0.5,0.75"))


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


@dataclass
class Setup:
    """What every timed run shares, made once before any timing: the pipeline, its settings, the inputs, the schedule
    of each ratio, and one runner per backend (their buffers and bindings reused by every run)."""

    pipe: object
    settings: SamplerSettings
    labels: list[int]
    noise: np.ndarray
    plans: list  # (ratio, recompute steps), ratio 0 first
    runner: object
    ref_runners: list  # (reference name, runner)
    threads: int

    @property
    def null(self) -> int:
        return self.pipe.null_class


def prepare(build_dir: str | Path, opts: Options, say) -> Setup:
    """Load the build, fix every ratio's steps (a DP calibrates here, once) and make the runners."""
    import torch

    from ..pipeline import Pipeline, seeded_noise

    pipe = Pipeline.load(build_dir, opts.backend)
    arch, N, B = pipe.arch, opts.steps, opts.batch
    settings = pipe.defaults.with_overrides(num_steps=N, guidance=opts.guidance, sampler=opts.sampler, order=opts.order)
    say("scheduling", 0, 1)
    given = opts.labels or [(7 * i + 1) % arch.num_classes for i in range(B)]
    labels = [given[i % len(given)] for i in range(B)]
    solver = {k: getattr(settings, k) for k in ("num_steps", "guidance", "sampler", "order")}
    plans = [(r, list(pipe.calibrated(pipe.plan(labels, sharing_ratio=r, schedule=opts.schedule, **solver)).recompute))
             for r in opts.measured_ratios]
    noise = seeded_noise(B, arch.latent_shape, opts.seed)
    runner = pipe.backend.runner(2 * B)  # once: every timed run reuses its buffers and bindings
    references = make_references(pipe.manifest) if opts.reference else []
    ref_runners = [(name, backend.runner(2 * B)) for name, backend in references]
    return Setup(pipe, settings, labels, noise, plans, runner, ref_runners, torch.get_num_threads())


def warm_up(s: Setup, opts: Options, say) -> dict:
    """A short run on every runner (first calls compile and allocate), then the matmul ceiling: the first of two."""
    say("warming up", 0, 1)
    # OpenVINO's first few calls are slower (seen on XL: 4.5 s, then 2.6 s), so 3 steps, not 1
    warm = s.settings.with_overrides(num_steps=3)
    for _, r in [(None, s.runner)] + s.ref_runners:
        _sample(r, s.noise, s.labels, s.null, warm, [0, 1, 2])
    ceil = ceiling.measure(s.threads, opts.ceiling_size or ceiling.SIZE)
    settle()
    return ceil


def time_calls(s: Setup, opts: Options, say) -> CallTimes:
    """Per-call seconds of each graph (CFG batch and conditional half), the loop's own cost, each reference's calls."""
    say("timing graph calls", 0, 1)
    enc_s, dec_s = call_times(s.runner, s.noise, s.labels, s.null, max(opts.repeat, 7))
    enc_half_s, dec_half_s = call_times(s.runner, s.noise, s.labels, s.null, max(opts.repeat, 7), cond_only=True)
    overhead_s = loop_overhead(s.runner, s.noise, s.labels, s.null, s.settings)
    ref_calls = {name: call_times(r, s.noise, s.labels, s.null, max(opts.repeat, 3)) for name, r in s.ref_runners}
    settle()
    return CallTimes(enc_s, dec_s, enc_half_s, dec_half_s, overhead_s, ref_calls)


def time_runs(s: Setup, opts: Options, say) -> RunTimes:
    """Round-robin: each repeat times every ratio (skipping the unneeded CFG half, then the full CFG batch), then every
    reference (encoder at every step, full CFG: what users run today), so load hits all alike."""
    ratios = [r for r, _ in s.plans]
    out = RunTimes({r: [] for r in ratios}, {r: [] for r in ratios}, {r: [] for r in ratios}, {name: [] for name, _ in s.ref_runners})
    total, done = opts.repeat * (2 * len(s.plans) + len(s.ref_runners)), 0
    name = s.pipe.backend.name
    for rep in range(opts.repeat):
        run_no = f"(run {rep + 1}/{opts.repeat})"
        for ratio, steps in s.plans:
            say(f"{name} ratio {ratio:g} {run_no}", done, total)
            elapsed, cpu_s, x = _timed_cpu(lambda: _sample(s.runner, s.noise, s.labels, s.null, s.settings, steps), s.runner)
            out.times[ratio].append(elapsed)
            out.cpu[ratio].append(cpu_s)
            if ratio == 0.0 and out.latents is None:
                out.latents = np.array(s.runner.host(x), np.float32)
            done += 1
            say(f"{name} ratio {ratio:g}, full CFG batch {run_no}", done, total)
            elapsed, x = _timed(lambda: _sample(s.runner, s.noise, s.labels, s.null, s.settings, steps, full_cfg=True), s.runner)
            out.times_full[ratio].append(elapsed)
            if ratio == 0.0 and out.latents_full is None:
                out.latents_full = np.array(s.runner.host(x), np.float32)
            done += 1
        for ref, r in s.ref_runners:
            say(f"{ref} ratio 0 {run_no}", done, total)
            _time_reference(s, ref, r, out)
            done += 1
    return out


def _time_reference(s: Setup, name: str, runner, out: RunTimes) -> None:
    """One run of a PyTorch reference at ratio 0, added to `out`; then its OpenMP workers settle."""
    every = list(range(s.settings.num_steps))
    elapsed, x = _timed(lambda: _sample(runner, s.noise, s.labels, s.null, s.settings, every, full_cfg=True), runner)
    out.ref_times[name].append(elapsed)
    out.ref_latents.setdefault(name, np.array(runner.host(x), np.float32))
    settle()


def run(build_dir: str | Path, opts: Options, progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Measure everything; returns the JSON-ready result (see module doc). Steps: prepare, warm up (first ceiling),
    time the calls, time the runs round-robin, the second ceiling, then latency_result.assemble."""
    opts.validate()
    say = progress or (lambda msg, done, total: None)
    load_start = machine.load_average()
    s = prepare(build_dir, opts, say)
    ceil_start = warm_up(s, opts, say)
    calls = time_calls(s, opts, say)
    runs = time_runs(s, opts, say)
    ceil_end = ceiling.measure(s.threads, opts.ceiling_size or ceiling.SIZE)
    total = opts.repeat * (2 * len(s.plans) + len(s.ref_runners))
    say("done", total, total)
    raw = Timings(plans=s.plans, calls=calls, runs=runs, ceil=[ceil_start, ceil_end], threads=s.threads,
                  load=[load_start, machine.load_average()])
    return assemble(s.pipe, opts, s.settings, raw, build_dir) | {"labels": s.labels}
