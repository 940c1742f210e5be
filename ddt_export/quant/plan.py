"""What a quantisation run is run with: the sampling runs it measures on, the float-site rules, SmoothQuant's strength."""

from __future__ import annotations

from dataclasses import dataclass

from .sites import SiteRules
from .per_token import GROUP_SIZE
from .smoothing import ALPHA


@dataclass(frozen=True)
class QuantPlan:
    """Which sampling runs feed the activation ranges and the sensitivity measurement, and how sites are chosen."""

    seeds: tuple[int, ...] = (0, 1, 2, 3)  # the runs the activation ranges are measured on
    samples_per_seed: int = 5  # user batch per run; the CFG batch is twice it (uncond + cond)
    steps: int | None = None  # None: the model's own sampler steps, capped at max_steps
    max_steps: int = 40
    heldout_seeds: tuple[int, ...] = (1000, 1001)  # the runs the sensitivities are measured on
    heldout_samples: int = 3
    threshold: float = 1.5  # a site stays float when quantising it alone costs >= this x the median site's error
    float_sites: tuple[str, ...] | None = None  # given: these stay float whatever the sensitivity (experiments)
    max_rel: float = 0.1  # then more sites go float, largest max error first, until max |q - f| / max |f| <= this
    alpha: float | None = ALPHA  # int8: SmoothQuant's migration strength (smoothing.py); None: no smoothing
    per_token_group: int | None = GROUP_SIZE  # int8: float sites may go per-token in groups of this (per_token.py); None: off

    @classmethod
    def for_model(cls, cfg) -> "QuantPlan":
        """Smaller runs for large models: a run costs the trajectories plus a quantiser pass over them per graph."""
        if cfg.hidden_size * cfg.num_blocks * cfg.num_tokens >= 768 * 12 * 256:  # B/2-256 and up
            return cls(seeds=(0, 1), samples_per_seed=2, max_steps=16, heldout_seeds=(1000,), heldout_samples=1)
        return cls()

    def labels(self, seed: int, count: int, num_classes: int) -> list[int]:
        return [(seed * 7919 + 31 * i) % num_classes for i in range(count)]  # spread over the classes

    def steps_for(self, source) -> int:
        """Sampling steps per recorded run for `source` (a ModelSource)."""
        return self.steps or min(source.sampler.num_steps, self.max_steps)

    @property
    def rules(self) -> SiteRules:
        return SiteRules(threshold=self.threshold, max_rel=self.max_rel, forced=self.float_sites)
