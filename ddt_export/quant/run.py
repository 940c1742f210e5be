"""W8A8 post-training quantisation of a build's two graphs: int8 (CPUs, TensorRT) and fp8 e4m3 (TensorRT on Ada/Hopper).

The quantiser is onnxruntime.quantization (`quantize_static`, QDQ format): it ships with the
runtime ddt-export already depends on, calibrates on the CPU, and writes standard-domain
QuantizeLinear/DequantizeLinear pairs that onnxruntime, OpenVINO and TensorRT all read.
It is set up the way TensorRT's explicit quantisation wants it and the way NVIDIA Model
Optimizer's ONNX PTQ drives the same function: max calibration (MinMax with symmetric
activations), symmetric int8 activations per tensor, symmetric int8 weights per output
channel, only MatMul/Gemm inputs quantised, biases left in float. fp8 follows Model
Optimizer's recipe for fp8 from a max-calibrated int8 graph: every scale times 127/448
(amax/448, e4m3's largest value) and the weights re-quantised from the fp32 weights.

Before int8, SmoothQuant is folded into a copy of the weights (smoothing.py): large activation
channels are scaled down and the matching weight columns up, exactly, so per-tensor activation
scales stop wasting their range; the graphs quantised are exported from that copy.

Calibration data are the model's own sampling trajectories: the encoder and decoder inputs
of every step of full CFG runs (both halves, several seeds and classes), recorded from the
build's fp32 graphs, because activation ranges move with t. A second, held-out set of runs
(other seeds and classes) measures each quantisable site's sensitivity: the graph's error
against fp32 with only that site quantised. Sites far more sensitive than the median site
stay in float (`choose_float_sites`); the manifest records every number. Each site's variant is
derived from the one all-sites graph (quantize_graph.Graph.only) instead of a quantiser pass per
site; the saved graph is written by the quantiser itself.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import onnx

from ..graphs import DEFAULT_OPSET
from .fp8 import FP8_MAX, INT8_MAX, to_fp8  # noqa: F401 (re-exported)
from .graph import EXTERNAL_LIMIT, Graph, save  # noqa: F401 (EXTERNAL_LIMIT re-exported)
from .sites import QUANTISED_OPS, SITES, site_nodes, site_of  # noqa: F401 (re-exported)
from .smoothing import ALPHA


@dataclass(frozen=True)
class CalibrationPlan:
    """Which sampling runs feed calibration and the sensitivity measurement."""

    seeds: tuple[int, ...] = (0, 1, 2, 3)
    samples_per_seed: int = 5  # user batch per run; the CFG batch is twice it (uncond + cond)
    steps: int | None = None  # None: the model's own sampler steps, capped at max_steps
    max_steps: int = 40
    heldout_seeds: tuple[int, ...] = (1000, 1001)
    heldout_samples: int = 3
    threshold: float = 1.5  # a site stays float when quantising it alone costs >= this x the median site's error
    float_sites: tuple[str, ...] | None = None  # given: these stay float whatever the sensitivity (experiments)
    max_rel: float = 0.1  # then more sites go float, largest max error first, until max |q - f| / max |f| <= this
    alpha: float | None = ALPHA  # int8: SmoothQuant's migration strength (smoothing.py); None: no smoothing

    @classmethod
    def for_model(cls, cfg) -> "CalibrationPlan":
        """Smaller runs for large models: the calibration runs cost trajectory + calibration passes."""
        if cfg.hidden_size * cfg.num_blocks * cfg.num_tokens >= 768 * 12 * 256:  # B/2-256 and up
            return cls(seeds=(0, 1), samples_per_seed=2, max_steps=16, heldout_seeds=(1000,), heldout_samples=1)
        return cls()

    def labels(self, seed: int, count: int, num_classes: int) -> list[int]:
        return [(seed * 7919 + 31 * i) % num_classes for i in range(count)]  # spread over the classes


# ----------------------------------------------------------------------------- trajectories


def trajectories(graphs: Path, source, plan: CalibrationPlan, seeds: Sequence[int], samples: int) -> dict[str, list[dict]]:
    """{"encoder": [feeds], "decoder": [feeds]}: every step's graph inputs of full CFG runs of the fp32 graphs in `graphs`.

    The fp32 graphs are the build's export of the fp32 model (checked against PyTorch to 1e-4
    by every build); onnxruntime runs them several times faster than eager PyTorch here.
    """
    import onnxruntime as ort

    from ..backends.buffers import HostRunner
    from ..pipeline import seeded_noise
    from ..sampler import sample

    settings = source.sampler.with_overrides(num_steps=plan_steps(plan, source))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    enc = ort.InferenceSession(str(Path(graphs) / "encoder.onnx"), opts, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(Path(graphs) / "decoder.onnx"), opts, providers=["CPUExecutionProvider"])
    (ex, et, ey), (dx, ds) = [i.name for i in enc.get_inputs()], [i.name for i in dec.get_inputs()]
    out: dict[str, list[dict]] = {"encoder": [], "decoder": []}

    class Recording(HostRunner):
        def __init__(self, batch: int):
            C, H = source.arch.in_channels, source.arch.latent_size
            self.x, self.t = np.zeros((batch, C, H, H), np.float32), np.zeros(batch, np.float32)
            self.y, self.v, self.s = np.zeros(batch, np.int64), np.zeros((batch, C, H, H), np.float32), None

        def encode(self, cond_only: bool = False) -> None:  # both halves always: calibration covers the unconditional one
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


def plan_steps(plan: CalibrationPlan, source) -> int:
    return plan.steps or min(source.sampler.num_steps, plan.max_steps)


def choose_float_sites(alone: dict[str, float], ratio: float) -> list[str]:
    """The sites that stay float: those whose error, quantised alone, is >= `ratio` x the median site's.

    Per-tensor int8 costs every matmul input about the same relative error (its step is
    amax / 127), so most sites cluster around one value; a site far above that cluster has
    outliers or amplifies its error downstream, and is where float pays. The rule compares
    sites with each other, so it holds whatever the model's overall error level.
    """
    if not alone:
        return []
    median = float(np.median(list(alone.values())))
    return sorted(s for s, e in alone.items() if e >= ratio * median)


def quantize_graphs(tmp: Path, model, source, precision: str, progress: Callable[[str], None] = lambda m: None,
                    plan: CalibrationPlan | None = None, opset: int = DEFAULT_OPSET) -> dict:
    """Replace tmp/encoder.onnx and tmp/decoder.onnx by QDQ graphs in place; returns the manifest's "quantization".

    int8 first folds SmoothQuant into a copy of the weights and quantises graphs exported from that copy
    (the same function; `opset` is the build's); fp8's e4m3 keeps 3 mantissa bits at any magnitude and is left as it is.
    """
    import onnxruntime

    if precision not in ("int8", "fp8"):
        raise ValueError(f"quantize_graphs quantises to int8 or fp8, not {precision!r}")
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # the quantiser's advice is for other models
    plan = plan or CalibrationPlan.for_model(source.arch)
    tmp = Path(tmp)
    started = time.perf_counter()
    progress(f"{precision}: recording calibration trajectories")
    calib = trajectories(tmp, source, plan, plan.seeds, plan.samples_per_seed)
    heldout = trajectories(tmp, source, plan, plan.heldout_seeds, plan.heldout_samples)
    probes = _probes(model)
    trajectory_s = time.perf_counter() - started
    steps = plan_steps(plan, source)
    record = {
        "quantizer": "onnxruntime.quantization.quantize_static",
        "quantizer_version": onnxruntime.__version__,
        "why": "ships with the runtime ddt-export already uses, calibrates on the CPU, writes standard QDQ that onnxruntime, "
               "OpenVINO and TensorRT read; set up as TensorRT and NVIDIA Model Optimizer's ONNX PTQ set it up",
        "scheme": {
            "format": "QDQ (QuantizeLinear/DequantizeLinear, standard domain)",
            "element_type": "int8" if precision == "int8" else "float8e4m3fn",
            "weights": "symmetric, per output channel, max |w| (stored " + ("int8" if precision == "int8" else "float8e4m3fn") + " + DequantizeLinear)",
            "activations": "symmetric, per tensor, max |x| over the calibration set (MinMax, zero point 0)",
            "scale": "amax / 127" if precision == "int8" else "amax / 448 (Model Optimizer's int8_to_fp8: int8 max scales x 127/448)",
            "ops": list(QUANTISED_OPS),
            "biases": "float",
        },
        "calibration": {
            "data": "inputs of both graphs at every step of full sampling runs of the fp32 graphs "
                    "(CFG batch: unconditional and conditional halves), encoder at every step",
            "seeds": list(plan.seeds),
            "samples_per_seed": plan.samples_per_seed,
            "labels": {str(s): plan.labels(s, plan.samples_per_seed, source.arch.num_classes) for s in plan.seeds},
            "steps_per_run": steps,
            "sampler": source.sampler.with_overrides(num_steps=steps).to_dict(),
            "encoder_batches": len(calib["encoder"]),
            "decoder_batches": len(calib["decoder"]),
            "cfg_batch": 2 * plan.samples_per_seed,
            "method": "MinMax (max calibration)",
        },
        "sensitivity": {
            "data": f"held-out runs: seeds {list(plan.heldout_seeds)}, {plan.heldout_samples} samples each, {steps} steps, every step",
            "metric": "relative L2 error of the graph output vs the fp32 graph (||q - f|| / ||f||) over the held-out inputs",
            "rule": f"a site stays float when quantising it alone gives >= {plan.threshold:g} x the median site's error; then, "
                    f"largest max error alone first, more sites go float until the graph's max |q - f| / max |f| <= {plan.max_rel:g} "
                    "over the held-out trajectories and random inputs drawn as the build check draws them (other seeds)",
            "threshold": plan.threshold,
        },
        "graphs": {},
        "seconds": {"trajectories": round(trajectory_s, 1)},
    }
    with tempfile.TemporaryDirectory(prefix="ddt-quant-", dir=tmp) as work_dir:
        work = Path(work_dir)
        graphs_from = tmp
        if precision == "int8" and plan.alpha is not None:
            t0 = time.perf_counter()
            progress(f"int8: smoothing activation outliers into the weights (SmoothQuant, alpha {plan.alpha:g})")
            graphs_from = work / "smoothed"
            record["smoothing"] = smooth_and_export(model, calib, plan.alpha, graphs_from, opset)
            record["seconds"]["smoothing"] = round(time.perf_counter() - t0, 1)
        for name in ("encoder", "decoder"):
            t0 = time.perf_counter()
            fp32 = work / f"{name}-fp32.onnx"
            shutil.copy(graphs_from / f"{name}.onnx", fp32)
            if (graphs_from / f"{name}.onnx.data").exists():
                shutil.copy(graphs_from / f"{name}.onnx.data", work / f"{name}.onnx.data")  # the location the graph names
            progress(f"{precision}: calibrating {name} on {len(calib[name])} trajectory batches")
            g = Graph(name, fp32, work, calib[name], heldout[name], precision, source.arch.num_encoder_blocks,
                      probes[name])
            every_model = g.quantised(list(g.sites))  # also writes the calibration cache
            calibrate_s = time.perf_counter() - t0
            every = g.error(every_model)
            alone, alone_max = {}, {}
            for site in g.sites:
                progress(f"{precision}: {name} sensitivity of {site}")
                alone[site], alone_max[site] = g.errors(g.only(every_model, [site]))
            keep_float = choose_float_sites(alone, plan.threshold) if plan.float_sites is None else \
                [s for s in g.sites if s in plan.float_sites]
            quantised_sites = [s for s in g.sites if s not in keep_float]
            _, candidate_max = g.errors(g.only(every_model, quantised_sites))
            guarded = []
            while candidate_max > plan.max_rel and quantised_sites and plan.float_sites is None:
                worst = max(quantised_sites, key=alone_max.get)  # the site with the largest max error alone goes float
                guarded.append({"site": worst, "max_rel_error_before": candidate_max})
                quantised_sites.remove(worst)
                keep_float = sorted([*keep_float, worst])
                progress(f"{precision}: {name} max error {candidate_max:.2e} > {plan.max_rel:g}: {worst} stays float")
                _, candidate_max = g.errors(g.only(every_model, quantised_sites))
            del every_model
            progress(f"{precision}: quantising {name} ({len(quantised_sites)} of {len(g.sites)} sites)")
            final = g.quantised(quantised_sites)  # the saved graph, as the quantiser writes it; its own errors are recorded
            final_error, final_max = g.errors(final)
            counts = _counts(final)
            save(final, tmp / f"{name}.onnx")
            ranges = json.loads(g.cache.read_text()) if g.cache.exists() else {}
            record["graphs"][name] = {
                "sites": {s: {"nodes": len(g.sites[s]), "what": SITES[s], "error_alone": alone[s], "max_rel_error_alone": alone_max[s],
                              "float": s in keep_float} for s in g.sites},
                "error_all_sites_quantised": every,
                "median_site_error": float(np.median(list(alone.values()))),
                "float_sites": {s: f"quantised alone: {alone[s]:.2e}, {alone[s] / np.median(list(alone.values())):.1f}x the median site"
                                + ("; kept float by the max-error guard" if any(x["site"] == s for x in guarded) else "")
                                for s in keep_float},
                "error": final_error,
                "max_rel_error": final_max,
                "max_rel_guard": guarded,
                "quantized_nodes": sum(len(g.sites[s]) for s in quantised_sites),
                "matmul_nodes": sum(len(v) for v in g.sites.values()),
                "ops": counts,
                "calibrated_tensors": len(ranges.get("data", ranges)) if isinstance(ranges, dict) else None,
                "seconds": {"calibration": round(calibrate_s, 1), "total": round(time.perf_counter() - t0, 1)},
            }
            del final, g
    record["seconds"]["total"] = round(time.perf_counter() - started, 1)
    return record


def smooth_and_export(model, calib: dict[str, list[dict]], alpha: float, out: Path, opset: int) -> dict:
    """Export encoder and decoder of the SmoothQuant-folded model to out/; returns the manifest's "smoothing"."""
    from ..export import example_inputs, export_graph, graph_modules
    from .smoothing import input_amax, smooth, smoothed_linears

    amax = input_amax(model, calib["encoder"], calib["decoder"])
    smoothed, factors = smooth(model, amax, alpha)
    out.mkdir()
    for spec, module in graph_modules(smoothed, "fp32"):
        export_graph(module, spec, example_inputs(spec, smoothed, batch=2), out / spec.file, opset)
    after = {name: amax[name] / s for name, s in factors.items()}  # exactly the smoothed inputs' ranges
    spread = lambda a: float(np.median([float(v.max() / v.median().clamp(min=1e-12)) for v in a.values()]))  # noqa: E731
    return {
        "method": "SmoothQuant (Xiao et al., 2023) folded into the weights: input channel j of each smoothed linear divided by "
                  "s_j = amax_j^alpha / max|W_:j|^(1 - alpha), the weight's column j multiplied by s_j; 1/s folded into the norm "
                  "weights, adaLN shift/scale rows, w3's rows and qkv's v rows in front of it (no extra op in the graph)",
        "alpha": alpha,
        "linears": smoothed_linears(model),
        "data": "the calibration trajectories (max |input| per channel over every batch)",
        "channel_spread": {"metric": "median over the smoothed linears of max channel amax / median channel amax, "
                                     "over the calibration data", "before": spread(amax), "after": spread(after)},
    }


def summary(record: dict) -> str:
    """What the build says of its quantisation: the time calibration took and, per graph, what stayed float."""
    sec, kind = record["seconds"], record["scheme"]["element_type"]
    lines = [f"{kind} calibration: {sec['total']:.0f} s in all, {sec['trajectories']:.0f} s of it "
             f"recording {record['calibration']['encoder_batches']} trajectory batches"]
    if "smoothing" in record:
        sm = record["smoothing"]
        lines.append(f"  SmoothQuant alpha {sm['alpha']:g} on {len(sm['linears'])} linears ({sec['smoothing']:.0f} s): "
                     f"largest/median input channel {sm['channel_spread']['before']:.1f} -> {sm['channel_spread']['after']:.1f}")
    for name, g in record["graphs"].items():
        lines.append(f"  {name}: ranges {g['seconds']['calibration']:.0f} s, sensitivity and final graph "
                     f"{g['seconds']['total'] - g['seconds']['calibration']:.0f} s; {g['quantized_nodes']} of {g['matmul_nodes']} matmuls "
                     f"{kind}, float: {', '.join(g['float_sites']) or 'none'}; error vs fp32 {g['error']:.1e}")
    return "\n".join(lines)


def _probes(model) -> dict[str, list[dict]]:
    """Random inputs in the build check's distribution (export.example_inputs), with seeds the check does not use."""
    from ..export import example_inputs
    from ..graphs import decoder_spec, encoder_spec

    out = {}
    for spec in (encoder_spec(model.cfg, "fp32"), decoder_spec(model.cfg, "fp32")):
        out[spec.name] = [{k: v.numpy() for k, v in example_inputs(spec, model, batch=3, seed=seed).items()} for seed in range(11, 19)]
    return out


def _counts(model: onnx.ModelProto) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear", "MatMul", "Gemm"):
            out[n.op_type] = out.get(n.op_type, 0) + 1
    return out


