"""Recording the inputs the quantiser measures on: every step's graph inputs of full CFG sampling runs, and probe inputs.

Activation ranges move with t, so they are measured on the model's own sampling trajectories:
the encoder and decoder inputs of every step of full CFG runs (both halves, several seeds and
classes) of the build's fp32 graphs, the encoder at every step. The fp32 graphs are the build's
export of the fp32 model (checked against PyTorch to 1e-4 by every build); onnxruntime runs them
several times faster than eager PyTorch here. Held-out runs (other seeds and classes) measure the
sites' sensitivities, and random probe inputs drawn as the build check draws them count for the
max error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .plan import QuantPlan

Feeds = dict[str, list[dict]]  # {"encoder": [graph inputs by name], "decoder": [...]}


@dataclass(frozen=True)
class Trajectories:
    """The feeds one quantisation run measures on, per graph, and the seconds it took to record them."""

    ranges: Feeds  # the activation ranges are measured on these (the plan's seeds)
    heldout: Feeds  # each site's sensitivity (the plan's held-out seeds)
    probes: Feeds  # random inputs in the build check's distribution: they count for the max error only
    seconds: float


def collect(graphs: Path, model, source, plan: QuantPlan) -> Trajectories:
    """Every feed a run needs, from the fp32 graphs in `graphs` (ranges, held-out) and `model` (probes)."""
    started = time.perf_counter()
    ranges = record_runs(graphs, source, plan, plan.seeds, plan.samples_per_seed)
    heldout = record_runs(graphs, source, plan, plan.heldout_seeds, plan.heldout_samples)
    return Trajectories(ranges, heldout, probes(model), time.perf_counter() - started)


def record_runs(graphs: Path, source, plan: QuantPlan, seeds: Sequence[int], samples: int) -> Feeds:
    """{"encoder": [feeds], "decoder": [feeds]}: every step's graph inputs of full CFG runs of the fp32 graphs in `graphs`."""
    import onnxruntime as ort

    from ..backends.buffers import HostRunner
    from ..pipeline import seeded_noise
    from ..sampler import sample

    settings = source.sampler.with_overrides(num_steps=plan.steps_for(source))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    enc = ort.InferenceSession(str(Path(graphs) / "encoder.onnx"), opts, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(Path(graphs) / "decoder.onnx"), opts, providers=["CPUExecutionProvider"])
    (ex, et, ey), (dx, ds) = [i.name for i in enc.get_inputs()], [i.name for i in dec.get_inputs()]
    out: Feeds = {"encoder": [], "decoder": []}

    class Recording(HostRunner):
        def __init__(self, batch: int):
            C, H = source.arch.in_channels, source.arch.latent_size
            self.x, self.t = np.zeros((batch, C, H, H), np.float32), np.zeros(batch, np.float32)
            self.y, self.v, self.s = np.zeros(batch, np.int64), np.zeros((batch, C, H, H), np.float32), None

        def encode(self, cond_only: bool = False) -> None:  # both halves always: the ranges cover the unconditional one
            feeds = {ex: self.x.copy(), et: self.t.copy(), ey: self.y.copy()}
            out["encoder"].append(feeds)
            self.s = enc.run(None, feeds)[0]

        def decode(self, cond_only: bool = False) -> None:
            feeds = {dx: self.x.copy(), ds: self.s}
            out["decoder"].append(feeds)
            self.v[...] = dec.run(None, feeds)[0]

    for seed in seeds:
        labels = plan.labels(seed, samples, source.arch.num_classes)
        noise = seeded_noise(samples, source.arch.latent_shape, seed)
        sample(Recording(2 * samples), noise, labels, source.null_class, settings, list(range(settings.num_steps)), full_cfg=True)  # both CFG halves, every step
    return out


def probes(model) -> Feeds:
    """Random inputs in the build check's distribution (export.example_inputs), with seeds the check does not use."""
    from ..export import example_inputs
    from ..graphs import decoder_spec, encoder_spec

    out = {}
    for spec in (encoder_spec(model.cfg, "fp32"), decoder_spec(model.cfg, "fp32")):
        out[spec.name] = [{k: v.numpy() for k, v in example_inputs(spec, model, batch=3, seed=seed).items()} for seed in range(11, 19)]
    return out
