"""The Python API: load a build (or an official config + checkpoint), plan a run, calibrate, generate.

    from ddt_export import Pipeline
    pipe = Pipeline.load("engines/digits")
    result = pipe.generate([1, 7], seed=0, sharing_ratio=0.75)
    images = pipe.images(result.latents)          # uint8 (B, H, W, 3)
    out = pipe(["seven", 1], seed=0)              # by name or id (class_names.py); out.images: PIL images

`plan(...)` checks every input of a run before any work and returns what the run needs; the
CLI, `ddt-export sample`, and the benchmarks all plan through it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from . import finite, schedules
from .backends import Backend, open_backend
from .errors import DDTError
from .manifest import Manifest, read
from .config import DDTConfig
from .model import DDT
from .calibration import CALIBRATION_SAMPLES
from .class_names import ClassNames, default_names, label_ids
from .labels import check_seed
from .sampler import MAX_BATCH, SamplerSettings, sample

CALIBRATION_SEED = 0


@dataclass
class Result:
    latents: np.ndarray  # (B, C, H, W) float32 at t = 1
    recompute: list[int]  # the steps where the encoder ran
    settings: SamplerSettings

    @property
    def sharing_ratio(self) -> float:
        return 1.0 - len(self.recompute) / self.settings.num_steps


OUTPUT_TYPES = ("pil", "np", "latent")


@dataclass
class Output:
    """What `pipe(...)` returns: the images (as `output_type` asked), the class ids sampled, the run, and its timing."""

    images: list | np.ndarray
    labels: tuple[int, ...]
    result: Result
    seconds: float  # the sampling run alone (calibration excluded)
    calibration_seconds: float = 0.0  # a DP schedule's one-off calibration, 0 when it was stored already

    @property
    def encoder_calls(self) -> int:
        """Steps at which the encoder ran (each over the whole batch); the rest reused its state."""
        return len(self.result.recompute)

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / len(self.labels)


@dataclass(frozen=True)
class Plan:
    """Everything one run needs, checked. `recompute` is None while a DP schedule waits for its calibration."""

    labels: tuple[int, ...]
    noise: np.ndarray  # (B, C, H, W) float32
    settings: SamplerSettings
    request: schedules.Request
    recompute: tuple[int, ...] | None
    full_cfg: bool = False  # the official full CFG batch at every call, instead of the conditional half where guidance is off

    @property
    def needs_calibration(self) -> bool:
        return self.recompute is None


def seeded_noise(batch: int, shape: Sequence[int], seed: int) -> np.ndarray:
    """Noise as the official app draws it: torch.randn on a CPU generator seeded with `seed`."""
    g = torch.Generator("cpu").manual_seed(int(seed))
    return torch.randn((batch, *shape), generator=g, dtype=torch.float32).numpy()


def check_labels(labels: Sequence[int], arch: DDTConfig, null_class: int) -> tuple[int, ...]:
    """Class labels in [0, K); the null class itself is allowed and samples unconditionally."""
    if any(isinstance(y, bool) or not isinstance(y, (int, np.integer)) for y in labels):
        raise DDTError(f"labels must be whole numbers (got {list(labels)[:5]})")
    labels = tuple(int(y) for y in labels)
    if not labels:
        raise DDTError("give at least one label, e.g. --labels 1,7")
    if len(labels) > MAX_BATCH:
        raise DDTError(f"{len(labels)} labels in one call; at most {MAX_BATCH} per call (use `ddt-export sample` for more)")
    bad = [y for y in labels if not (0 <= y < arch.num_classes or y == null_class)]
    if bad:
        raise DDTError(
            f"label {bad[0]} is outside [0, {arch.num_classes - 1}] for this {arch.num_classes}-class model "
            f"(or {null_class}, the null class, for unconditional samples)"
        )
    return labels


def check_images(space: str, manifest: Manifest | None) -> None:
    if space != "pixel" and (manifest is None or not manifest.has("vae_decoder")):
        raise DDTError(
            "this is a latent model and the build has no VAE decoder; rebuild with --vae DIR "
            "(a local diffusers AutoencoderKL folder such as sd-vae-ft-ema), or keep --save-latents"
        )


class Pipeline:
    def __init__(self, backend: Backend, *, arch: DDTConfig, null_class: int, sampler: SamplerSettings, space: str, manifest: Manifest | None = None,
                 class_names: ClassNames | None = None):
        self.backend, self.arch, self.null_class = backend, arch, null_class
        self.defaults, self.space, self.manifest = sampler, space, manifest
        self.class_names = class_names  # None: ids only (a build made before names, or of an unnamed model)
        self._similarity: dict[tuple, np.ndarray] = {}  # calibrations made in this process, by settings
        self._vae = None

    @classmethod
    def load(cls, build_dir: str | Path, backend: str = "auto", **options) -> "Pipeline":
        """A build folder on a backend (`options` go to the backend, e.g. threads=1 for onnxruntime)."""
        from .files import locked

        with locked(build_dir, shared=True):  # the graphs the backend opens are the ones the manifest verified
            m = read(build_dir)
            be = open_backend(backend, m, **options)
        return cls(be, arch=m.arch, null_class=m.null_class, sampler=m.sampler, space=m.space, manifest=m, class_names=m.class_names)

    @classmethod
    def from_official(cls, config: str | Path, ckpt: str | Path, *, ema: bool = True, trust: bool = False) -> "Pipeline":
        """The eager PyTorch reference straight from an official config and checkpoint."""
        from .official import load_weights, read_config, read_weights

        src = read_config(config)
        names = default_names(src.arch.num_classes, src.extra.get("class_names"), f"{config}: ddt_export.class_names")
        model = load_weights(DDT(src.arch), read_weights(ckpt, ema=ema, trust=trust), str(ckpt))
        return cls(open_backend("torch", model=model), arch=src.arch, null_class=src.null_class, sampler=src.sampler, space=src.space,
                   class_names=None if names is None else ClassNames(tuple(names)))

    def label_ids(self, labels: str | int | Sequence[str | int]) -> list[int]:
        """Class ids for labels given as ids or names (any synonym, case-insensitive; class_names.py's rules), e.g.
        `pipe.label_ids(["golden retriever", 207])`; an unknown name is a DDTError naming the three closest classes."""
        return label_ids(labels, self.class_names, "labels")

    # ------------------------------------------------------------------ planning (no work yet)

    def plan(self, labels: Sequence[int | str], *, seed: int | None = None, noise: np.ndarray | None = None,
             recompute: Sequence[int] | None = None, sharing_ratio: float | None = None, schedule: str = "dp",
             full_cfg: bool = False, **overrides) -> Plan:
        """Every input of a run checked, and its recompute steps where they need no calibration; `overrides`
        are SamplerSettings fields (num_steps, guidance, interval_min, ...)."""
        labels = check_labels(self.label_ids(labels), self.arch, self.null_class)
        request = schedules.Request(None if recompute is None else tuple(recompute), sharing_ratio, schedule)
        settings = self.defaults.with_overrides(**overrides)
        finite.check_representable(settings)
        if seed is not None and noise is not None:
            raise DDTError("give either a seed or noise, not both")
        if noise is None:
            noise = seeded_noise(len(labels), self.arch.latent_shape, 0 if seed is None else check_seed(seed, "seed"))
        noise = self.check_noise(noise, len(labels))
        if request.needs_similarity and settings.num_steps > schedules.MAX_DP_STEPS:
            raise DDTError(f"DP schedules take at most {schedules.MAX_DP_STEPS:,} steps (got {settings.num_steps}); "
                           "use --schedule uniform for longer runs")
        steps = None
        if not request.needs_similarity:
            steps = tuple(request.resolve(settings.num_steps))
        else:
            sim = self.similarity(settings)
            if sim is not None:
                steps = tuple(request.resolve(settings.num_steps, sim))
        return Plan(labels, noise, settings, request, steps, bool(full_cfg))

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
        check_images(self.space, self.manifest)

    def similarity(self, settings: SamplerSettings) -> np.ndarray | None:
        key = tuple(settings.to_dict().items())
        if key in self._similarity:
            return self._similarity[key]
        return self.manifest.similarity(settings) if self.manifest is not None else None

    # ------------------------------------------------------------------ calibrating

    def calibrate(self, settings: SamplerSettings, samples: int = CALIBRATION_SAMPLES, seed: int = CALIBRATION_SEED, progress=None) -> np.ndarray:
        """Similarity (N, N) of the self-condition across the steps of full runs under `settings` (8 samples, seed 0)."""
        if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= MAX_BATCH:
            raise DDTError(f"calibration needs 1 to {MAX_BATCH} samples (got {samples})")
        finite.check_representable(settings)
        if settings.num_steps > schedules.MAX_DP_STEPS:
            raise DDTError(f"calibrations serve DP schedules, which take at most {schedules.MAX_DP_STEPS:,} steps (got {settings.num_steps})")
        g = torch.Generator("cpu").manual_seed(seed)
        noise = torch.randn((samples, *self.arch.latent_shape), generator=g).numpy()
        labels = torch.randint(0, self.arch.num_classes, (samples,), generator=g).tolist()
        runner = self.backend.runner(2 * samples)
        states: list[np.ndarray] = []
        # fp32 states unless they pass 2 GB (XL at 250 steps is 4.7 GB); fp16 moves cosines by ~1e-4
        big = settings.num_steps * 2 * samples * self.arch.num_tokens * self.arch.hidden_size * 4 > 2 << 30
        keep_dtype = np.float16 if big else np.float32

        def keep(i: int) -> None:
            states.append(np.array(runner.host(runner.s), dtype=keep_dtype))
            if progress is not None:
                progress(i)

        with runner.scope(), np.errstate(all="ignore"):  # both CFG halves at every step: the DP needs every step's whole state
            x = sample(runner, noise, labels, self.null_class, settings, list(range(settings.num_steps)), keep, full_cfg=True)
            sim = schedules.similarity(np.stack(states))
        if not finite.all_finite(runner.host(x)):  # its trajectories blew up: a matrix of them would mislead every DP
            raise DDTError(f"calibrating: {finite.blame(settings, noise, None)}")
        return finite.check_similarity(sim, settings)

    def calibrate_and_store(self, settings: SamplerSettings, samples: int = CALIBRATION_SAMPLES, progress=None,
                            replace: bool = False) -> bool:
        """Calibrate under `settings`, keep the matrix here, and record it with the build; False when it could not be
        recorded (no build, or the folder was rebuilt meanwhile: this process still uses it). `replace`: an entry of
        these settings measured with another number of samples is replaced (else the stored one is kept)."""
        sim = self.calibrate(settings, samples, progress=progress)
        self._similarity[tuple(settings.to_dict().items())] = sim
        if self.manifest is None:
            return False
        from .calibration import store

        updated = store(self.manifest, settings, sim, samples=samples, seed=CALIBRATION_SEED, replace=replace)
        if updated is not None:
            self.manifest = updated
        return updated is not None

    def calibrated(self, plan: Plan, progress=None) -> Plan:
        """The plan with its DP steps, calibrating first (once, stored with the build) if it needs it."""
        if not plan.needs_calibration:
            return plan
        if self.similarity(plan.settings) is None:
            self.calibrate_and_store(plan.settings, progress=progress)
        steps = plan.request.resolve(plan.settings.num_steps, self.similarity(plan.settings))
        return replace(plan, recompute=tuple(steps))

    # ------------------------------------------------------------------ running

    def run(self, plan: Plan, progress: Callable[[int], None] | None = None) -> Result:
        """Sample a planned (and calibrated) run."""
        if plan.needs_calibration:
            raise DDTError("this plan's DP schedule has no calibration yet; pass it through Pipeline.calibrated first")
        runner = self.backend.runner(2 * len(plan.labels))
        with runner.scope(), np.errstate(all="ignore"):  # GPU backends: the loop's own work on the runner's stream
            x = sample(runner, plan.noise, plan.labels, self.null_class, plan.settings, plan.recompute, progress, plan.full_cfg)
        latents = np.asarray(runner.host(x), np.float32)
        if not finite.all_finite(latents):  # before any caller writes it: say what blew up instead
            raise DDTError(finite.blame(plan.settings, plan.noise, self.first_bad_step(plan, runner)))
        return Result(latents, list(plan.recompute), plan.settings)

    def first_bad_step(self, plan: Plan, runner) -> int | None:
        """The first step whose velocity is not finite, found by running the plan again with a check after every step
        (only after a run has blown up: the normal path checks the result alone)."""
        bad: list[int] = []

        def check(i: int) -> None:
            if not finite.all_finite(runner.host(runner.v)):
                bad.append(i)
                raise _Stop

        try:
            with runner.scope(), np.errstate(all="ignore"):
                runner.v[...] = 0  # the blown-up run's rows: a step that runs only the conditional half leaves the others
                sample(runner, plan.noise, plan.labels, self.null_class, plan.settings, plan.recompute, check, plan.full_cfg)
        except _Stop:
            pass
        return bad[0] if bad else None

    def generate(self, labels: Sequence[int | str], *, seed: int | None = None, noise: np.ndarray | None = None,
                 recompute: Sequence[int] | None = None, sharing_ratio: float | None = None, schedule: str = "dp",
                 full_cfg: bool = False, progress: Callable[[int], None] | None = None, **overrides) -> Result:
        """Plan, calibrate if the DP needs it, and sample; `overrides` are SamplerSettings fields (num_steps, guidance, ...).

        Where guidance is off only the conditional half of the CFG batch runs; `full_cfg=True` runs the official full
        batch at every step (same latents within float rounding, slower)."""
        plan = self.plan(labels, seed=seed, noise=noise, recompute=recompute, sharing_ratio=sharing_ratio, schedule=schedule,
                         full_cfg=full_cfg, **overrides)
        return self.run(self.calibrated(plan), progress)

    def __call__(self, labels: str | int | Sequence[str | int], *, seed: int | None = None, output_type: str = "pil",
                 progress: Callable[[int], None] | None = None, **options) -> "Output":
        """Generate by class name or id, as diffusers pipelines are called: `pipe(["golden retriever", 207], seed=0).images`.

        `options` are generate's (noise, recompute, sharing_ratio, schedule, full_cfg, and SamplerSettings fields such as
        num_steps and guidance). `output_type`: "pil" (a list of RGB PIL images), "np" (uint8 (B, H, W, 3), as `images()`),
        or "latent" (the float32 samples (B, C, H, W) before any VAE). Images need a pixel model or a build with a VAE
        decoder; that is checked, like every input, before sampling."""
        if output_type not in OUTPUT_TYPES:
            raise DDTError(f"output_type must be one of {', '.join(OUTPUT_TYPES)} (got {output_type!r})")
        if output_type != "latent":
            self.check_images()
        plan = self.plan(labels, seed=seed, **options)
        calibrating = time.perf_counter()
        plan = self.calibrated(plan)
        started = time.perf_counter()
        result = self.run(plan, progress)
        seconds = time.perf_counter() - started
        images = result.latents if output_type == "latent" else self.images(result.latents)
        if output_type == "pil":
            from PIL import Image

            images = [Image.fromarray(img) for img in images]
        return Output(images, plan.labels, result, seconds, started - calibrating)

    def images(self, latents: np.ndarray) -> np.ndarray:
        """uint8 (B, H, W, 3) images: pixel-space samples directly, latents through the build's VAE graph."""
        from .images import to_uint8

        if self.space == "pixel":
            return to_uint8(latents)
        self.check_images()
        if self._vae is None:
            from .backends.vae_decoder import VAEDecoder

            self._vae = VAEDecoder(self.manifest)  # opened once, reused by every call (every shard in `sample`)
        return to_uint8(finite.check_images(self._vae(latents)))


class _Stop(Exception):
    """Ends a diagnostic re-run at its first non-finite step."""
