"""The flow-matching sampling loop (Euler or Adams multistep) with classifier-free guidance and encoder sharing.

One plain function, as in k-diffusion: the schedule (which steps run the encoder) comes in
from outside, and the model comes in as a `Runner` whose buffers the backend owns. The loop
never asks which backend it drives: it writes the inputs into the runner's buffers, calls
`encode()` at recompute steps and `decode()` at every step, and does the guidance and the
update with in-place array operators that numpy arrays and torch tensors (CPU or CUDA) share.
The solver (Euler, or the official Adams-Bashforth of order 2-4) is data too: per-step times, dt
and multistep coefficients from solvers.py; Euler is the one-coefficient case.

Semantics follow the official samplers (sharing_sampling.py, adam_sampling.py): t runs from 0 (noise) to 1
(data); the CFG batch is [uncond; cond]; guidance applies iff lo < t < hi (strict), else the
same formula with w = 1, which is the conditional velocity alone: there the graphs run only the
conditional half (`cfg_halves`), unless `full_cfg` asks for the official full batch; s is reused
between recompute steps; Adams keeps the guided velocities of the last `order` steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable, ContextManager, Protocol, Sequence

import numpy as np

from .errors import DDTError
from .solvers import ADAMS_DEFAULT_ORDER, MAX_ORDER, SAMPLERS, Steps, plan_steps

MAX_STEPS = 10_000  # far past any schedule in use (the official sampler runs 250); a typo'd 1e9 fails here, not in memory
MAX_BATCH = 1024  # samples per call (the CFG batch is twice it); the graphs' batch axis allows 4096


@dataclass(frozen=True)
class SamplerSettings:
    """The official samplers' knobs (their `diffusion_sampler.init_args`), and which of the two runs."""

    num_steps: int = 250
    guidance: float = 1.0
    interval_min: float = 0.0
    interval_max: float = 1.0
    timeshift: float = 1.0
    last_step: float | None = None  # None: 1 / num_steps, as the official sampler
    sampler: str = "euler"  # or "adams": the official AdamLMSampler
    order: int = 1  # Adams' order, 1-4 (Euler is order 1)

    def with_overrides(self, **kw: Any) -> "SamplerSettings":
        """These settings with the given (non-None) ones replaced; choosing a sampler without an order takes its default."""
        kw = {k: v for k, v in kw.items() if v is not None}
        if "sampler" in kw and "order" not in kw and kw["sampler"] != self.sampler:
            kw["order"] = ADAMS_DEFAULT_ORDER if kw["sampler"] == "adams" else 1
        out = replace(self, **kw)
        out.validate()
        return out

    def steps(self) -> Steps:
        """Per-step times, dt and coefficients of this sampler (solvers.py)."""
        return plan_steps(self.num_steps, self.last_step, self.timeshift, self.sampler, self.order)

    def validate(self) -> None:
        """Every knob finite and in range, or one DDTError naming it (the CLI, configs and manifests all come here)."""
        if isinstance(self.num_steps, bool) or not isinstance(self.num_steps, (int, np.integer)):
            raise DDTError(f"steps must be a whole number (got {self.num_steps!r})")
        if not 1 <= self.num_steps <= MAX_STEPS:
            raise DDTError(f"steps must be between 1 and {MAX_STEPS:,} (got {self.num_steps}); the official sampler uses 250")
        for name, what in (("guidance", "guidance scale"), ("interval_min", "guidance interval low end"),
                           ("interval_max", "guidance interval high end"), ("timeshift", "timeshift"), ("last_step", "last step")):
            v = getattr(self, name)
            if v is None and name == "last_step":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v):
                raise DDTError(f"{what} must be a finite number (got {v!r})")
        if self.last_step is not None and not 0 < self.last_step < 1:
            raise DDTError(f"last step must be in (0, 1) (got {self.last_step})")
        if self.timeshift <= 0:
            raise DDTError(f"timeshift must be > 0 (got {self.timeshift})")
        if self.interval_min > self.interval_max:
            raise DDTError(f"guidance interval {self.interval_min},{self.interval_max} is reversed; give LO,HI with LO <= HI")
        self._validate_solver()

    def _validate_solver(self) -> None:
        if self.sampler not in SAMPLERS:
            raise DDTError(f"unknown sampler {self.sampler!r}; choose {' or '.join(SAMPLERS)}")
        if isinstance(self.order, bool) or not isinstance(self.order, (int, np.integer)):
            raise DDTError(f"order must be a whole number from 1 to {MAX_ORDER} (got {self.order!r})")
        if not 1 <= self.order <= MAX_ORDER:
            raise DDTError(f"order must be from 1 to {MAX_ORDER} (got {self.order}); the official Adams sampler goes to {MAX_ORDER}")
        if self.sampler == "euler" and self.order != 1:
            raise DDTError(f"order {self.order} is for the Adams sampler (Euler is order 1); add --sampler adams")

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class Runner(Protocol):
    """A backend bound to one CFG batch size, with buffers allocated once (backends/buffers.py).

    x (2B,C,H,W), t (2B,), y (2B,) feed the encoder; x and s feed the decoder; v is its
    output. `encode()` fills s from x, t, y; `decode()` fills v from x, s; with `cond_only` they run
    the conditional half alone, rows B:2B of every buffer (guidance off). `array(a)` moves a
    host array to the runner's device and `host(a)` brings one back as float32 numpy
    (identities for CPU backends). `scope()` makes the runner's stream current for the loop's
    own work and `synchronize()` waits for everything queued (both no-ops without a GPU).
    """

    x: Any
    t: Any
    y: Any
    s: Any
    v: Any

    def encode(self, cond_only: bool = False) -> None: ...
    def decode(self, cond_only: bool = False) -> None: ...
    def array(self, a: np.ndarray) -> Any: ...
    def host(self, a: Any) -> np.ndarray: ...
    def scope(self) -> ContextManager: ...
    def synchronize(self) -> None: ...


def guidance_scales(settings: SamplerSettings, steps: Steps | None = None) -> list[float]:
    """w at each step: the guidance inside the strict interval lo < t < hi, else 1 (the official loops' rule).

    The official loops compare a float32 t with the bounds, so the bounds round to float32 too; t is
    the sampler's own (the grid point for Euler, the running sum for Adams).
    """
    t = (steps or settings.steps()).t
    lo, hi = np.float32(settings.interval_min), np.float32(settings.interval_max)
    return [float(settings.guidance) if lo < t[i] < hi else 1.0 for i in range(settings.num_steps)]


def cfg_halves(scales: Sequence[float], recompute: Sequence[int], full_cfg: bool = False) -> tuple[dict[int, bool], list[bool]]:
    """Where the unconditional half of the CFG batch is needed: ({recompute step: encoder runs both halves}, [decoder
    runs both halves, per step]).

    The decoder needs it wherever w != 1 (elsewhere v = vu + 1 (vc - vu) is vc). The encoder at a recompute step r
    needs it iff some step in [r, next recompute) is guided, since its state serves every one of them. `full_cfg`:
    both halves at every call, as the official sampler runs.
    """
    guided = [full_cfg or w != 1.0 for w in scales]
    bounds = [*recompute, len(scales)]
    return {r: any(guided[r:n]) for r, n in zip(bounds, bounds[1:])}, guided


def sample(
    runner: Runner,
    noise: np.ndarray,
    labels: Sequence[int],
    null_class: int,
    settings: SamplerSettings,
    recompute: Sequence[int],
    callback: Callable[[int], None] | None = None,
    full_cfg: bool = False,
) -> Any:
    """Integrate noise (B,C,H,W) at t=0 to latents at t=1; returns x in the runner's array type.

    Calls run only the conditional half (rows B:2B) where guidance is off, unless `full_cfg`.
    """
    B = noise.shape[0]
    steps = settings.steps()  # t, dt and coefficients per step
    scales = guidance_scales(settings, steps)
    encode_both, decode_both = cfg_halves(scales, recompute, full_cfg)
    x = runner.array(np.array(noise, dtype=np.float32, copy=True))  # B C H W, updated in place
    scratch = [runner.array(np.empty_like(noise, dtype=np.float32)) for _ in range(steps.history + (steps.history > 1) * 2)]
    history, work = scratch[:steps.history], scratch[steps.history:]  # k x (B C H W) guided v (a ring); Adams' 2 sums
    runner.y[:] = runner.array(np.array([null_class] * B + list(labels), dtype=np.int64))  # [uncond; cond]
    vu, vc = runner.v[:B], runner.v[B:]  # views into the decoder's output buffer
    for i in range(settings.num_steps):
        both = decode_both[i] or encode_both.get(i, False)  # does any graph read the unconditional rows now?
        if both:
            runner.x[:B] = x
        runner.x[B:] = x
        if i in encode_both:
            runner.t[:] = float(steps.t[i])  # a Python float: torch tensors refuse numpy scalars; exact for float32
            runner.encode(cond_only=not encode_both[i])  # s for this step; reused until the next recompute step
        runner.decode(cond_only=not decode_both[i])
        guided = history[i % steps.history]
        if decode_both[i]:  # v = vu + w (vc - vu), without temporaries
            guided[...] = vc
            guided -= vu
            guided *= scales[i]
            guided += vu
        else:  # w = 1: v = vc
            guided[...] = vc
        advance(x, history, work, i, steps.coefficients[i], float(steps.dt[i]))
        if callback is not None:
            callback(i)
    return x


def advance(x: Any, history: list, work: list, i: int, coefficients: Sequence[float], dt: float) -> None:
    """x += dt * sum_j c_j v_(i-k+1+j), in place, in the official order of operations (each c_j v_j, summed, times dt).

    `history[m % len(history)]` holds the guided v of step m. Euler (one slot) scales its v in place;
    Adams sums into `work` so that its history stays intact for the next steps.
    """
    if len(history) == 1:  # Euler: x += v dt
        v = history[0]
        v *= dt
        x += v
        return
    acc, term = work
    k = len(coefficients)
    for j, c in enumerate(coefficients):
        target = acc if j == 0 else term
        target[...] = history[(i - k + 1 + j) % len(history)]
        target *= c
        if j:
            acc += term
    acc *= dt
    x += acc
