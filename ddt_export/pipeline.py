"""The Python API: load a build (or an official config + checkpoint), generate, calibrate.

    from ddt_export import Pipeline
    pipe = Pipeline.load("engines/digits")
    result = pipe.generate([1, 7], seed=0, sharing_ratio=0.75)
    images = pipe.images(result.latents)          # uint8 (B, H, W, 3)
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from . import schedules
from .backends import Backend, open_backend
from .errors import DDTError
from .manifest import Manifest, read
from .model import DDT
from .sampler import SamplerSettings, sample

CALIBRATION_SEED = 0


def runner_scope(runner):
    """The runner's stream as the current one, where it has one (TensorRT), else nothing."""
    scope = getattr(runner, "scope", None)
    return scope() if scope is not None else nullcontext()


@dataclass
class Result:
    latents: np.ndarray  # (B, C, H, W) float32 at t = 1
    recompute: list[int]  # the steps where the encoder ran
    settings: SamplerSettings

    @property
    def sharing_ratio(self) -> float:
        return 1.0 - len(self.recompute) / self.settings.num_steps


def seeded_noise(batch: int, shape: Sequence[int], seed: int) -> np.ndarray:
    """Noise as the official app draws it: torch.randn on a CPU generator seeded with `seed`."""
    g = torch.Generator("cpu").manual_seed(int(seed))
    return torch.randn((batch, *shape), generator=g, dtype=torch.float32).numpy()


class Pipeline:
    def __init__(self, backend: Backend, *, arch, null_class: int, sampler: SamplerSettings, space: str, manifest: Manifest | None = None):
        self.backend, self.arch, self.null_class = backend, arch, null_class
        self.defaults, self.space, self.manifest = sampler, space, manifest
        self._similarity: dict[int, np.ndarray] = {}  # calibrations made in this process

    @classmethod
    def load(cls, build_dir: str | Path, backend: str = "auto") -> "Pipeline":
        m = read(build_dir)
        return cls(open_backend(backend, m), arch=m.arch, null_class=m.null_class, sampler=m.sampler, space=m.space, manifest=m)

    @classmethod
    def from_official(cls, config: str | Path, ckpt: str | Path, *, ema: bool = True, trust: bool = False) -> "Pipeline":
        """The eager PyTorch reference straight from an official config and checkpoint."""
        from .official import load_weights, read_config, read_weights

        src = read_config(config)
        model = load_weights(DDT(src.arch), read_weights(ckpt, ema=ema, trust=trust), str(ckpt))
        return cls(open_backend("torch", model=model), arch=src.arch, null_class=src.null_class, sampler=src.sampler, space=src.space)

    # ------------------------------------------------------------------ checks

    def check_labels(self, labels: Sequence[int]) -> list[int]:
        """Class labels in [0, K); the null class itself is allowed and samples unconditionally."""
        labels = [int(y) for y in labels]
        if not labels:
            raise DDTError("give at least one label, e.g. --labels 1,7")
        bad = [y for y in labels if not (0 <= y < self.arch.num_classes or y == self.null_class)]
        if bad:
            raise DDTError(
                f"label {bad[0]} is outside [0, {self.arch.num_classes - 1}] for this {self.arch.num_classes}-class model "
                f"(or {self.null_class}, the null class, for unconditional samples)"
            )
        return labels

    def check_noise(self, noise: np.ndarray, batch: int) -> np.ndarray:
        want = (batch, *self.arch.latent_shape)
        if not isinstance(noise, np.ndarray) or noise.dtype not in (np.float32, np.float64):
            raise DDTError(f"noise must be a float32 array of shape {want} (got {getattr(noise, 'dtype', type(noise).__name__)})")
        if noise.shape != want:
            if noise.ndim == 4 and noise.shape[1:] == want[1:]:
                raise DDTError(f"noise has batch {noise.shape[0]} but {batch} labels were given; give one label per noise sample")
            raise DDTError(f"noise has shape {noise.shape}, expected {want} (batch, C, H, W)")
        if not np.isfinite(noise).all():
            raise DDTError("noise holds inf or nan")
        return noise.astype(np.float32)

    def check_images(self) -> None:
        """Fail before sampling, not after, when this build cannot turn samples into images."""
        if self.space != "pixel" and (self.manifest is None or not self.manifest.has("vae_decoder")):
            from .images import to_images

            to_images(np.zeros((0, *self.arch.latent_shape), np.float32), self.space, self.manifest)

    def needs_calibration(self, num_steps: int, *, recompute=None, sharing_ratio=None, method: str = "dp") -> bool:
        wants_dp = recompute is None and method == "dp" and sharing_ratio is not None and sharing_ratio > 0
        return wants_dp and self.similarity(num_steps) is None

    def similarity(self, num_steps: int) -> np.ndarray | None:
        if num_steps in self._similarity:
            return self._similarity[num_steps]
        return self.manifest.similarity(num_steps) if self.manifest is not None else None

    def validate(self, labels, *, seed=None, noise=None, recompute=None, sharing_ratio=None, schedule="dp", **overrides):
        """Every input of a run checked before any work: (labels, noise, settings)."""
        labels = self.check_labels(labels)
        settings = self.defaults.with_overrides(**overrides)
        if noise is None:
            noise = seeded_noise(len(labels), self.arch.latent_shape, 0 if seed is None else seed)
        noise = self.check_noise(noise, len(labels))
        if sharing_ratio is not None:
            schedules.check_ratio(sharing_ratio)
        if schedule not in schedules.METHODS:
            raise DDTError(f"unknown schedule {schedule!r}; choose dp or uniform")
        if recompute is not None:
            schedules.resolve(settings.num_steps, recompute=recompute, ratio=sharing_ratio)
        return labels, noise, settings

    def schedule(self, num_steps: int, *, recompute=None, sharing_ratio=None, method: str = "dp") -> list[int]:
        """Recompute steps; a DP schedule without stored calibration calibrates first (and stores it)."""
        if sharing_ratio is not None:
            schedules.check_ratio(sharing_ratio)
        if self.needs_calibration(num_steps, recompute=recompute, sharing_ratio=sharing_ratio, method=method):
            self.calibrate_and_store(num_steps)
        sim = self.similarity(num_steps) if recompute is None and method == "dp" else None
        return schedules.resolve(num_steps, recompute=recompute, ratio=sharing_ratio, method=method, sim=sim)

    def calibrate_and_store(self, num_steps: int, samples: int = 8, progress=None) -> Path | None:
        """Calibrate with the default sampler settings; keep the matrix, and save it with the build."""
        sim = self.calibrate(num_steps, samples, progress=progress)
        self._similarity[num_steps] = sim
        if self.manifest is None:
            return None
        from .calibration import store

        return store(self.manifest, num_steps, sim, samples=samples, seed=CALIBRATION_SEED, settings=self.defaults)

    # ------------------------------------------------------------------ running

    def generate(
        self,
        labels: Sequence[int],
        *,
        seed: int | None = None,
        noise: np.ndarray | None = None,
        recompute: Sequence[int] | None = None,
        sharing_ratio: float | None = None,
        schedule: str = "dp",
        progress: Callable[[int], None] | None = None,
        **overrides,
    ) -> Result:
        """Sample latents; `overrides` are SamplerSettings fields (num_steps, guidance, ...)."""
        labels, noise, settings = self.validate(labels, seed=seed, noise=noise, recompute=recompute,
                                                sharing_ratio=sharing_ratio, schedule=schedule, **overrides)
        steps = self.schedule(settings.num_steps, recompute=recompute, sharing_ratio=sharing_ratio, method=schedule)
        runner = self.backend.runner(2 * len(labels))
        with runner_scope(runner):  # GPU backends: the loop's own work on the runner's stream
            x = sample(runner, noise, labels, self.null_class, settings, steps, progress)
        return Result(np.asarray(runner.host(x), np.float32), steps, settings)

    def calibrate(self, num_steps: int, samples: int = 8, seed: int = CALIBRATION_SEED, progress=None, **overrides) -> np.ndarray:
        """Similarity (N, N) of the self-condition across the steps of a full run (8 samples, seed 0)."""
        settings = self.defaults.with_overrides(num_steps=num_steps, **overrides)
        if samples < 1:
            raise DDTError(f"calibration needs at least 1 sample (got {samples})")
        g = torch.Generator("cpu").manual_seed(seed)
        noise = torch.randn((samples, *self.arch.latent_shape), generator=g).numpy()
        labels = torch.randint(0, self.arch.num_classes, (samples,), generator=g).tolist()
        runner = self.backend.runner(2 * samples)
        states: list[np.ndarray] = []
        # fp32 states unless they pass 2 GB (XL at 250 steps is 4.7 GB); fp16 moves cosines by ~1e-4
        big = num_steps * 2 * samples * self.arch.num_tokens * self.arch.hidden_size * 4 > 2 << 30
        keep_dtype = np.float16 if big else np.float32

        def keep(i: int) -> None:
            states.append(np.array(runner.host(runner.s), dtype=keep_dtype))
            if progress is not None:
                progress(i)

        with runner_scope(runner):
            sample(runner, noise, labels, self.null_class, settings, list(range(num_steps)), keep)
        return schedules.similarity(np.stack(states))

    def images(self, latents: np.ndarray) -> np.ndarray:
        """uint8 (B, H, W, 3) images: pixel-space samples directly, latents through the build's VAE graph."""
        from .images import to_images

        return to_images(latents, self.space, self.manifest)
