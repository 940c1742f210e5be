"""Finite results only: settings float32 cannot hold are refused up front, and a run that blew up names the cause.

Every run's result (latents, decoded images, a calibration's similarity matrix) is checked
before anything is written; a non-finite one becomes one DDTError saying which setting or
input made it blow up (the guidance scale, the noise, or the time grid at the step where the
velocity first went non-finite), never a junk file with exit 0.
"""

from __future__ import annotations

import warnings

import numpy as np

from .errors import DDTError
from .sampler import SamplerSettings, guidance_scales

FLOAT32_MAX = float(np.finfo(np.float32).max)
NOISE_TYPICAL = 100.0  # |z| of standard normal noise never comes near this
GUIDANCE_TYPICAL = 100.0  # the official samplers use 1 to ~10


def check_representable(settings: SamplerSettings) -> None:
    """Refuse, before any work, settings whose guidance or time grid float32 cannot represent."""
    g = float(settings.guidance)
    if abs(g) > FLOAT32_MAX:
        raise DDTError(f"guidance scale {g:g} does not fit in float32 (at most {FLOAT32_MAX:.3g}); use e.g. --cfg 3")
    if settings.last_step is not None and np.float32(1.0) - np.float32(settings.last_step) == np.float32(1.0):
        raise DDTError(f"last step {settings.last_step:g} is below float32's resolution near t = 1; use at least 1e-7")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        steps = settings.steps()
    parts = [np.asarray(steps.t, np.float64), np.asarray(steps.dt, np.float64), *(np.asarray(c, np.float64) for c in steps.coefficients)]
    if not all(np.isfinite(p).all() for p in parts):
        raise DDTError(f"the time grid of {settings.num_steps} steps with timeshift {settings.timeshift:g} is not finite in float32 "
                       f"({settings.sampler}); use a timeshift nearer 1 (the official samplers use 1 to 3)")


def all_finite(a) -> bool:
    return bool(np.isfinite(np.asarray(a)).all())


def blame(settings: SamplerSettings, noise: np.ndarray, step: int | None) -> str:
    """Why a run's result is not finite, in one line: the noise, the guidance scale, or the grid at `step` (0-based)."""
    n = settings.num_steps
    where = f" at step {step + 1} of {n}" if step is not None else ""
    with np.errstate(all="ignore"):
        noise_max = float(np.abs(noise).max()) if noise.size else 0.0
    if noise_max > NOISE_TYPICAL:
        return (f"the result is not finite: the noise (values up to {noise_max:.3g}; standard normal noise stays within ~6) "
                f"made the model's output overflow float32{where}; nothing was written. Give standard normal noise, or a --seed")
    scales = guidance_scales(settings)
    guided = [i for i, w in enumerate(scales) if w != 1.0 and (step is None or i <= step)]
    if guided and abs(settings.guidance) > GUIDANCE_TYPICAL:
        return (f"the result is not finite: guidance scale (--cfg) {settings.guidance:g} made the guided velocity overflow float32"
                f"{where}; nothing was written. Use a guidance scale the model was trained for (the official samplers use 1 to ~10)")
    t = f" (t = {float(settings.steps().t[step]):.4g})" if step is not None else ""
    last = "default" if settings.last_step is None else f"{settings.last_step:g}"
    return (f"the result is not finite: the model's output became nan/inf{where}{t} with guidance {settings.guidance:g}, "
            f"timeshift {settings.timeshift:g}, last step {last}, {n} steps ({settings.sampler}); nothing was written. "
            "Try settings nearer the build's defaults (`ddt-export inspect BUILD`)")


def check_images(images: np.ndarray) -> np.ndarray:
    """Decoded pictures before they become uint8: a VAE fed extreme latents can overflow."""
    if not all_finite(images):
        raise DDTError("the VAE decoder's output is not finite for these latents; nothing was written. "
                       "Check the settings and noise that made them (the latents themselves were finite)")
    return images


def check_similarity(sim: np.ndarray, settings: SamplerSettings) -> np.ndarray:
    """A calibration's matrix before it is stored: nan there would poison every later DP schedule of these settings."""
    if not all_finite(sim):
        raise DDTError(f"calibrating {settings.num_steps} steps gave a non-finite similarity matrix (the encoder's state "
                       f"overflowed, guidance {settings.guidance:g}, timeshift {settings.timeshift:g}); nothing was stored. "
                       "Calibrate with settings nearer the build's defaults")
    return sim
