"""The Euler flow-matching sampler with classifier-free guidance and encoder sharing.

One plain function, as in k-diffusion: the schedule (which steps run the encoder) comes in
from outside, and the model comes in as a `Runner` whose buffers the backend owns. The loop
never asks which backend it drives: it writes the inputs into the runner's buffers, calls
`encode()` at recompute steps and `decode()` at every step, and does the guidance and Euler
update with in-place array operators that numpy arrays and torch tensors (CPU or CUDA) share.

Semantics follow the official sampler (sharing_sampling.py): t runs from 0 (noise) to 1
(data); the CFG batch is [uncond; cond]; guidance applies iff lo < t < hi (strict), else the
same formula with w = 1, which is the conditional velocity alone: there the graphs run only the
conditional half (`cfg_halves`), unless `full_cfg` asks for the official full batch; s is reused
between recompute steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable, ContextManager, Protocol, Sequence

import numpy as np

from .errors import DDTError

MAX_STEPS = 10_000  # far past any schedule in use (the official sampler runs 250); a typo'd 1e9 fails here, not in memory
MAX_BATCH = 1024  # samples per call (the CFG batch is twice it); the graphs' batch axis allows 4096


@dataclass(frozen=True)
class SamplerSettings:
    """The official EulerSampler's knobs (its `diffusion_sampler.init_args`)."""

    num_steps: int = 250
    guidance: float = 1.0
    interval_min: float = 0.0
    interval_max: float = 1.0
    timeshift: float = 1.0
    last_step: float | None = None  # None: 1 / num_steps, as the official sampler

    def with_overrides(self, **kw: Any) -> "SamplerSettings":
        out = replace(self, **{k: v for k, v in kw.items() if v is not None})
        out.validate()
        return out

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

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def timesteps(num_steps: int, last_step: float | None = None, timeshift: float = 1.0) -> np.ndarray:
    """The N + 1 time points (float32) of the official grid: linspace to 1 - last_step, then 1.

    Computed with torch's own float32 linspace, so the strict guidance-interval test sees the very
    same t as the official sampler: torch's kernel counts the first half up from 0 and the second
    half down from the end, and its AVX2 build fuses multiply-adds that its default build rounds
    separately (the C++ runtime reproduces both, runtime/src/time_grid.cpp).
    """
    import torch

    last = 1.0 / num_steps if last_step is None or num_steps == 1 else last_step
    t = torch.cat([torch.linspace(0.0, 1.0 - last, num_steps), torch.tensor([1.0])])  # N+1 float32
    return (t / (t + (1 - t) * timeshift)).numpy()


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


def guidance_scales(settings: SamplerSettings, grid: np.ndarray) -> list[float]:
    """w at each step: the guidance inside the strict interval lo < t < hi, else 1 (the official loop's rule).

    The official loop compares a float32 t with the bounds, so the bounds round to float32 too.
    """
    lo, hi = np.float32(settings.interval_min), np.float32(settings.interval_max)
    return [float(settings.guidance) if lo < grid[i] < hi else 1.0 for i in range(settings.num_steps)]


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
    grid = timesteps(settings.num_steps, settings.last_step, settings.timeshift)  # N+1
    scales = guidance_scales(settings, grid)
    encode_both, decode_both = cfg_halves(scales, recompute, full_cfg)
    x = runner.array(np.array(noise, dtype=np.float32, copy=True))  # B C H W, updated in place
    guided = runner.array(np.empty_like(noise, dtype=np.float32))  # B C H W scratch
    runner.y[:] = runner.array(np.array([null_class] * B + list(labels), dtype=np.int64))  # [uncond; cond]
    vu, vc = runner.v[:B], runner.v[B:]  # views into the decoder's output buffer
    for i in range(settings.num_steps):
        dt = float(grid[i + 1] - grid[i])  # float32 difference, as the official dt
        both = decode_both[i] or encode_both.get(i, False)  # does any graph read the unconditional rows now?
        if both:
            runner.x[:B] = x
        runner.x[B:] = x
        if i in encode_both:
            runner.t[:] = float(grid[i])  # a Python float: torch tensors refuse numpy scalars; exact for float32
            runner.encode(cond_only=not encode_both[i])  # s for this step; reused until the next recompute step
        runner.decode(cond_only=not decode_both[i])
        if decode_both[i]:  # v = vu + w (vc - vu), then x += v dt, without temporaries
            guided[...] = vc
            guided -= vu
            guided *= scales[i]
            guided += vu
        else:  # w = 1: v = vc
            guided[...] = vc
        guided *= dt
        x += guided
        if callback is not None:
            callback(i)
    return x
