"""The manifest's `quantization` record of a quantisation run, and the summary a build prints of it.

The record is what `quantize_graphs` returns; the manifest's schema types it (`Quantization`).
"ranges" is the activation-range data (the recorded trajectories) and "seconds"/"ranges" per graph
the time their measurement took; builds made before 0.2 called both "calibration", which the schema
still reads ("calibration" is the DP's similarity measurement of `ddt-export calibrate`). Its fixed
descriptions (which quantiser and why, the scheme, what each number measures) are the constants
below, written into every record so that a build folder says how it was made without this package
at hand; the numbers come from the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import per_token
from .plan import QuantPlan
from .sites import QUANTISED_OPS, SITES, SiteChoice, median_error
from .trajectories import Trajectories

QUANTIZER = "onnxruntime.quantization.quantize_static"
WHY = ("ships with the runtime ddt-export already uses, calibrates on the CPU, writes standard QDQ that onnxruntime, "
       "OpenVINO and TensorRT read; set up as TensorRT and NVIDIA Model Optimizer's ONNX PTQ set it up")
FORMAT = "QDQ (QuantizeLinear/DequantizeLinear, standard domain)"
ACTIVATIONS = "symmetric, per tensor, max |x| over the range data (MinMax, zero point 0)"
RANGE_DATA = ("inputs of both graphs at every step of full sampling runs of the fp32 graphs "
              "(CFG batch: unconditional and conditional halves), encoder at every step")
RANGE_METHOD = "MinMax (max calibration)"
SENSITIVITY_METRIC = "relative L2 error of the graph output vs the fp32 graph (||q - f|| / ||f||) over the held-out inputs"
SMOOTHING_METHOD = ("SmoothQuant (Xiao et al., 2023) folded into the weights: input channel j of each smoothed linear divided by "
                    "s_j = amax_j^alpha / max|W_:j|^(1 - alpha), the weight's column j multiplied by s_j; 1/s folded into the norm "
                    "weights, adaLN shift/scale rows, w3's rows and qkv's v rows in front of it (no extra op in the graph)")
SMOOTHING_DATA = "the range trajectories (max |input| per channel over every batch)"
SPREAD_METRIC = "median over the smoothed linears of max channel amax / median channel amax, over the range data"


def header(precision: str, plan: QuantPlan, source, data: Trajectories) -> dict:
    """The record before any graph is quantised: the quantiser, the scheme, the range data, the sensitivity rule."""
    import onnxruntime

    return {
        "quantizer": QUANTIZER,
        "quantizer_version": onnxruntime.__version__,
        "why": WHY,
        "scheme": scheme(precision) | ({"per_token": per_token_scheme(plan)} if precision == "int8" and plan.per_token_group else {}),
        "ranges": range_data(plan, source, data),  # the activation-range data (builds before 0.2 call it "calibration")
        "sensitivity": sensitivity(plan, plan.steps_for(source)),
        "graphs": {},
        "seconds": {"trajectories": round(data.seconds, 1)},
    }


def scheme(precision: str) -> dict:
    element = "int8" if precision == "int8" else "float8e4m3fn"
    return {
        "format": FORMAT,
        "element_type": element,
        "weights": f"symmetric, per output channel, max |w| (stored {element} + DequantizeLinear)",
        "activations": ACTIVATIONS,
        "scale": "amax / 127" if precision == "int8" else "amax / 448 (Model Optimizer's int8_to_fp8: int8 max scales x 127/448)",
        "ops": list(QUANTISED_OPS),
        "biases": "float",
    }


def range_data(plan: QuantPlan, source, data: Trajectories) -> dict:
    """The runs the activation ranges were measured on."""
    steps = plan.steps_for(source)
    return {
        "data": RANGE_DATA,
        "seeds": list(plan.seeds),
        "samples_per_seed": plan.samples_per_seed,
        "labels": {str(s): plan.labels(s, plan.samples_per_seed, source.arch.num_classes) for s in plan.seeds},
        "steps_per_run": steps,
        "sampler": source.sampler.with_overrides(num_steps=steps).to_dict(),
        "encoder_batches": len(data.ranges["encoder"]),
        "decoder_batches": len(data.ranges["decoder"]),
        "cfg_batch": 2 * plan.samples_per_seed,
        "method": RANGE_METHOD,
    }


def sensitivity(plan: QuantPlan, steps: int) -> dict:
    return {
        "data": f"held-out runs: seeds {list(plan.heldout_seeds)}, {plan.heldout_samples} samples each, {steps} steps, every step",
        "metric": SENSITIVITY_METRIC,
        "rule": f"a site stays float when quantising it alone gives >= {plan.threshold:g} x the median site's error; then, "
                f"largest max error alone first, more sites go float until the graph's max |q - f| / max |f| <= {plan.max_rel:g} "
                "over the held-out trajectories and random inputs drawn as the build check draws them (other seeds)",
        "threshold": plan.threshold,
    }


def smoothing(alpha: float, linears: list[str], spread: tuple[float, float]) -> dict:
    """The record's "smoothing": SmoothQuant's strength, the linears it smoothed, their inputs' channel spread before/after."""
    return {
        "method": SMOOTHING_METHOD,
        "alpha": alpha,
        "linears": linears,
        "data": SMOOTHING_DATA,
        "channel_spread": {"metric": SPREAD_METRIC, "before": spread[0], "after": spread[1]},
    }


@dataclass(frozen=True)
class PerTokenResult:
    """What the per-token step measured and chose for one graph (per_token.py), errors as OpenVINO runs the graph."""

    alone: dict[str, float]  # candidate site -> relative L2 error with only it per-token
    alone_max: dict[str, float]
    chosen: list[str]
    guarded: list[dict]
    error: float  # the saved graph's relative L2 error run by OpenVINO (f32, per-token groups)
    max_rel_error: float
    speed: dict | None = None  # per_token.timed's measurement on the build's CPU, when the speed rule ran


def per_token_scheme(plan: QuantPlan) -> dict:
    """The record's scheme["per_token"]: what the per-token sites are and how each runtime runs them."""
    import nncf

    group = plan.per_token_group
    return {
        "weights": per_token.WEIGHTS,
        "activations": {rt: text.format(group=group) for rt, text in per_token.RUNTIMES.items()},
        "group_size": group,
        "library": f"nncf {nncf.__version__}",
        "rule": per_token.RULE.format(group=group, threshold=plan.threshold, max_rel=plan.max_rel),
    }


@dataclass(frozen=True)
class GraphResult:
    """What quantising one graph measured and chose: the record's graphs[name]."""

    sites: dict[str, list[str]]  # {site: node names}
    alone: dict[str, float]  # relative L2 error with only that site quantised
    alone_max: dict[str, float]  # max relative error with only that site quantised
    every: float  # relative L2 error with every site quantised
    choice: SiteChoice
    error: float  # the saved graph's relative L2 error
    max_rel_error: float  # ... and max relative error (held-out and probe inputs)
    ops: dict[str, int]
    range_tensors: int | None
    ranges_seconds: float
    total_seconds: float
    per_token: PerTokenResult | None = None

    def scheme_of(self, site: str) -> str:
        if self.per_token is not None and site in self.per_token.chosen:
            return "per_token"
        return "float" if site in self.choice.float_sites else "static"

    def to_record(self) -> dict:
        median = median_error(self.alone)
        float_sites = [s for s in self.choice.float_sites if self.scheme_of(s) == "float"]
        out = {
            "sites": {s: {"nodes": len(n), "what": SITES[s], "error_alone": self.alone[s], "max_rel_error_alone": self.alone_max[s],
                          "float": s in float_sites, "scheme": self.scheme_of(s), **self._per_token_alone(s)}
                      for s, n in self.sites.items()},
            "error_all_sites_quantised": self.every,
            "median_site_error": median,
            "float_sites": {s: f"quantised alone: {self.alone[s]:.2e}, {self.alone[s] / median:.1f}x the median site"
                            + ("; kept float by the max-error guard" if self.choice.by_guard(s) else "")
                            + self._per_token_why_not(s, median) for s in float_sites},
            "error": self.error,
            "max_rel_error": self.max_rel_error,
            "max_rel_guard": self.choice.guarded,
            "quantized_nodes": sum(len(self.sites[s]) for s in self.choice.quantised),
            "matmul_nodes": sum(len(v) for v in self.sites.values()),
            "ops": self.ops,
            "calibrated_tensors": self.range_tensors,  # the on-disk key: tensors with a measured activation range
            "seconds": {"ranges": round(self.ranges_seconds, 1), "total": round(self.total_seconds, 1)},
        }
        if self.per_token is not None:
            pt = self.per_token
            out["per_token_sites"] = {s: f"static alone: {self.alone[s]:.2e} ({self.alone[s] / median:.1f}x the median site); "
                                         f"per-token alone: {pt.alone[s]:.2e}" for s in pt.chosen}
            out["per_token_nodes"] = sum(len(self.sites[s]) for s in pt.chosen)
            out["per_token_guard"] = pt.guarded
            if pt.speed is not None:
                out["per_token_speed"] = pt.speed | {"kept": bool(pt.chosen)}
            out["errors_by_runtime"] = {  # the saved graph as each runtime runs it (onnxruntime: per-token sites in float)
                "onnxruntime": {"error": self.error, "max_rel_error": self.max_rel_error},
                "openvino": {"error": pt.error, "max_rel_error": pt.max_rel_error},
            }
        return out

    def _per_token_alone(self, site: str) -> dict:
        if self.per_token is None or site not in self.per_token.alone:
            return {}
        return {"per_token_error_alone": self.per_token.alone[site], "per_token_max_rel_error_alone": self.per_token.alone_max[site]}

    def _per_token_why_not(self, site: str, median: float) -> str:
        pt = self.per_token
        if pt is None or site not in pt.alone:
            return ""
        if any(g["site"] == site for g in pt.guarded):
            return "; per-token too: kept float by the max-error guard"
        if pt.speed is not None and not pt.chosen:
            return (f"; per-token passed ({pt.alone[site]:.2e}) but OpenVINO ran the graph slower with it on this CPU "
                    f"({pt.speed['per_token_ms']:.1f} vs {pt.speed['static_ms']:.1f} ms)")
        return f"; per-token alone: {pt.alone[site]:.2e} ({pt.alone[site] / median:.1f}x the median site)"


def summary(record) -> str:
    """What the build says of its quantisation: the time it took (recording, ranges, sensitivity) and, per graph, what stayed float.

    `record` is the dict quantize_graphs returns or the manifest's typed section of it (anything with `model_dump`).
    """
    if not isinstance(record, dict):
        record = record.model_dump(mode="json", by_alias=True)
    sec, kind = record["seconds"], record["scheme"]["element_type"]
    ranges = record["ranges"]
    lines = [f"{kind} quantisation: {sec['total']:.0f} s in all, {sec['trajectories']:.0f} s of it "
             f"recording {ranges['encoder_batches']} trajectory batches"]
    if "smoothing" in record:
        sm = record["smoothing"]
        lines.append(f"  SmoothQuant alpha {sm['alpha']:g} on {len(sm['linears'])} linears ({sec['smoothing']:.0f} s): "
                     f"largest/median input channel {sm['channel_spread']['before']:.1f} -> {sm['channel_spread']['after']:.1f}")
    for name, g in record["graphs"].items():
        lines.append(f"  {name}: ranges {g['seconds']['ranges']:.0f} s, sensitivity and final graph "
                     f"{g['seconds']['total'] - g['seconds']['ranges']:.0f} s; {g['quantized_nodes']} of {g['matmul_nodes']} matmuls "
                     f"{kind}{per_token_part(g)}, float: {', '.join(g['float_sites']) or 'none'}; error vs fp32 {g['error']:.1e}"
                     + (f" (OpenVINO {g['errors_by_runtime']['openvino']['error']:.1e})" if g.get("errors_by_runtime") else ""))
    return "\n".join(lines)


def per_token_part(graph: dict) -> str:
    sites = graph.get("per_token_sites") or {}
    return f", per-token: {', '.join(sites)}" if sites else ""
