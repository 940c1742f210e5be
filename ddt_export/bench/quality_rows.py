"""One configuration of the quality benchmark sampled and judged into a row: `Config`, `sample_config`, `Judging`, `Row`.

A `Config` is one point on the benchmark's axes (precision, sharing ratio, schedule); every
configuration samples the same labels and noise (`Inputs`), so rows pair sample by sample. A
new axis (a sampler and its order, a step count) is a field of `Config`, what `sample_config`
passes to `generate`, and a key in `Row.to_dict`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from .. import schedules as sched
from .judges import FeatureSpaces, Judge, frechet_distance, to_digit_space

DP_AT_UNIFORM = "dp@uniform"  # the DP schedule at uniform's encoder calls


@dataclass(frozen=True)
class Solver:
    """The solver axis: a sampler, its order and a step count (None: the run's steps)."""

    sampler: str = "euler"
    order: int = 1
    steps: int | None = None

    @property
    def name(self) -> str:
        """"euler", or "adams2" .. "adams4"."""
        return self.sampler if self.sampler == "euler" else f"{self.sampler}{self.order}"

    @property
    def default(self) -> bool:
        """The run's own sampler and steps: rows keep the keys they had before the solver axis."""
        return self == Solver()

    @classmethod
    def parse(cls, text: str, steps: int | None = None) -> "Solver":
        """"euler" or "adams2".."adams4" (Adams of that order), at `steps`."""
        from ..errors import DDTError
        from ..solvers import MAX_ORDER

        name = text.strip().lower()
        if name == "euler":
            return cls("euler", 1, steps)
        if name.startswith("adams") and name[5:] in {str(k) for k in range(1, MAX_ORDER + 1)}:
            return cls("adams", int(name[5:]), steps)
        raise DDTError(f"unknown solver {text!r}; choose euler or adams1..adams{MAX_ORDER} (Adams of that order)")

    def __str__(self) -> str:
        return f"{self.name} {self.steps}" if self.steps is not None else self.name


@dataclass(frozen=True)
class Config:
    """One point on the benchmark's axes: a precision, a sharing ratio, a schedule ("uniform", "dp" or "dp@uniform")
    and a solver (sampler, order, steps)."""

    precision: str
    ratio: float
    schedule: str
    solver: Solver = Solver()

    @property
    def shown_schedule(self) -> str:
        """The schedule as rows show it: "none" without sharing."""
        return "none" if self.ratio == 0 else self.schedule

    @property
    def key(self) -> str:
        """How the JSON names the row, e.g. "bf16 0.75 uniform", or "fp32 0.75 dp adams2 16" on the solver axis."""
        base = f"{self.precision} {self.ratio:g} {self.shown_schedule}"
        return base if self.solver.default else f"{base} {self.solver}"

    def at(self, **change) -> "Config":
        """The same point with some axes changed, e.g. its fp32 counterpart: `config.at(precision="fp32")`."""
        return replace(self, **change)

    def describe(self) -> str:
        """The progress line for this configuration (a log shows one per row)."""
        what = f"ratio {self.ratio:.2f} {self.schedule if self.ratio > 0 else '(no sharing)'}"
        what = what if self.solver.default else f"{self.solver} steps, {what}"
        return what if self.precision == "fp32" else f"{self.precision} {what}"


@dataclass(frozen=True)
class Inputs:
    """The labels (i % 10) and, per noise seed, the noise every configuration samples."""

    labels: list[int]
    seeds: tuple[int, ...]
    noises: dict  # seed -> (samples, *latent_shape)

    @classmethod
    def make(cls, samples: int, seeds: tuple[int, ...], latent_shape) -> "Inputs":
        from ..pipeline import seeded_noise

        return cls([i % 10 for i in range(samples)], seeds, {sd: seeded_noise(samples, latent_shape, sd) for sd in seeds})

    @property
    def samples(self) -> int:
        return len(self.labels)

    @property
    def pooled_labels(self) -> np.ndarray:
        """The labels of every sample over all seeds, in sampling order."""
        return np.array(self.labels * len(self.seeds))


@dataclass(frozen=True)
class Sampling:
    """How a configuration was sampled: the steps the encoder ran at, the seconds it took, the backend."""

    recompute: list[int]
    seconds: float
    backend: str
    steps: int  # network (decoder) calls per sample: one per step, for Euler and Adams alike


@dataclass(frozen=True)
class Scores:
    """How a configuration's samples were judged: class accuracy, Frechet distance per feature space, both per seed."""

    accuracy: float
    per_class: list  # accuracy of each class 0..9
    frechet_by_space: dict  # {space: value}
    per_seed: dict  # {seed: {"accuracy": a, space: value}}


@dataclass
class Row:
    """One configuration's result: what was sampled, how, how it was judged, and the bootstrap spread of its distances
    (set once every row is in, quality_compare.bootstrap). `to_dict` is the flat row of the JSON."""

    config: Config
    sampling: Sampling
    scores: Scores
    frechet_std_by_space: dict = field(default_factory=dict)
    fidelity: float | None = None  # mean relative L2 of the final latents to the converged reference (Fidelity)

    @property
    def key(self) -> str:
        return self.config.key

    @property
    def encoder_calls(self) -> int:
        return len(self.sampling.recompute)

    @property
    def frechet(self) -> float:
        """In the mlp space (the judge classifier's features), as before the other spaces."""
        return self.scores.frechet_by_space["mlp"]

    @property
    def frechet_std(self) -> float:
        return self.frechet_std_by_space.get("mlp", 0.0)

    def to_dict(self) -> dict:
        c, s, sc = self.config, self.sampling, self.scores
        return {"ratio": c.ratio, "schedule": c.shown_schedule, "encoder_calls": self.encoder_calls, "accuracy": sc.accuracy,
                "frechet": self.frechet, "frechet_std": self.frechet_std, "latency_s": s.seconds, "per_class": sc.per_class,
                "precision": c.precision, "backend": s.backend, "frechet_by_space": sc.frechet_by_space,
                "frechet_std_by_space": self.frechet_std_by_space, "per_seed": sc.per_seed, "recompute": s.recompute,
                "solver": c.solver.name, "sampler": c.solver.sampler, "order": c.solver.order, "steps": s.steps,
                "network_calls": s.steps, "fidelity": self.fidelity}


def config_settings(config: Config, settings):
    """The run's sampler settings with this configuration's solver (sampler, order, steps) in them."""
    c = config.solver
    return settings.with_overrides(num_steps=c.steps, sampler=c.sampler, order=c.order)


def schedule_args(pipe, config: Config, labels: list[int], settings) -> dict:
    """`generate`'s schedule arguments for `config` under `settings`; a DP schedule is calibrated here (for exactly
    these settings: an Adams run gets its own matrix), outside the timing."""
    N, solver = settings.num_steps, settings.to_dict()  # every setting (guidance too: --cfg), not only the solver's
    if config.schedule == DP_AT_UNIFORM:
        pipe.calibrated(pipe.plan(labels[:1], sharing_ratio=config.ratio, schedule="dp", **solver))
        return {"recompute": sched.dp(pipe.similarity(settings), len(sched.uniform(N, config.ratio)))}
    kw = {"sharing_ratio": config.ratio, "schedule": config.schedule}
    if config.ratio > 0 and config.schedule == "dp":
        pipe.calibrated(pipe.plan(labels[:1], **solver, **kw))
    return kw


def sample_config(pipe, config: Config, inputs: Inputs, settings, chunk: int) -> tuple[np.ndarray, Sampling]:
    """Every seed's samples of `config`, `chunk` per call, timed: (final latents (seeds x samples, C, H, W), how they
    were sampled)."""
    settings = config_settings(config, settings)
    kw = schedule_args(pipe, config, inputs.labels, settings)
    solver = settings.to_dict()  # every setting: a --cfg run must sample (and calibrate) at that guidance
    started, parts, recompute = time.perf_counter(), [], []
    for sd in inputs.seeds:
        for lo in range(0, inputs.samples, chunk):
            r = pipe.generate(inputs.labels[lo : lo + chunk], noise=inputs.noises[sd][lo : lo + chunk], **solver, **kw)
            parts.append(r.latents)
            recompute = r.recompute
    elapsed = time.perf_counter() - started
    return np.concatenate(parts), Sampling(list(map(int, recompute)), elapsed, pipe.backend.name, settings.num_steps)


class Judging:
    """The judge classifier and its feature spaces, trained once on the real digits, and the real digits' features."""

    def __init__(self):
        self.judge = Judge()
        self.spaces = FeatureSpaces(self.judge)
        self.real = self.spaces(self.judge.real)

    def score(self, digits: np.ndarray, inputs: Inputs) -> tuple[dict, Scores]:
        """(the samples' features in every space, their scores over all seeds and per seed)."""
        labels, n = inputs.pooled_labels, inputs.samples
        hits = self.judge.predict(digits) == labels
        f = self.spaces(digits)
        by_space = {k: frechet_distance(v, self.real[k]) for k, v in f.items()}
        per_seed = {}
        for i, sd in enumerate(inputs.seeds):
            sl = slice(i * n, (i + 1) * n)
            per_seed[str(sd)] = {"accuracy": float(hits[sl].mean()), **{k: frechet_distance(v[sl], self.real[k]) for k, v in f.items()}}
        return f, Scores(float(hits.mean()), [float(hits[labels == c].mean()) for c in range(10)], by_space, per_seed)
