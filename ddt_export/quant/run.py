"""One quantisation run, step by step: record the trajectories, smooth (int8), then per graph measure, choose, write.

`quantize_graphs` replaces a staging folder's fp32 encoder.onnx and decoder.onnx by QDQ graphs in
place and returns the manifest's "quantization" record (record.py). Per graph: one quantiser pass
over every site measures the activation ranges (cached for every later pass), each site's
variant derived from that graph gives its sensitivity, `sites.choose_sites` picks the float sites,
a last quantiser pass writes the saved graph, and (int8) the float sites that pass per_token's rule
get int8 weights with per-token activations (per_token.py).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import onnx

from ..graphs import DEFAULT_OPSET
from . import per_token, record, trajectories
from .graph import Graph, load, op_counts, save
from .plan import QuantPlan
from .sites import SiteChoice, choose_sites, median_error
from .trajectories import Trajectories


@dataclass(frozen=True)
class Run:
    """One quantize_graphs call: the staging folder, the model's source, the target precision, the plan, the progress line."""

    tmp: Path
    source: object  # a ModelSource: architecture, null class, sampler settings
    precision: str  # "int8" or "fp8"
    plan: QuantPlan
    progress: Callable[[str], None]

    def say(self, message: str) -> None:
        self.progress(f"{self.precision}: {message}")


def quantize_graphs(tmp: Path, model, source, precision: str, progress: Callable[[str], None] = lambda m: None,
                    plan: QuantPlan | None = None, opset: int = DEFAULT_OPSET) -> dict:
    """Replace tmp/encoder.onnx and tmp/decoder.onnx by QDQ graphs in place; returns the manifest's "quantization".

    int8 first folds SmoothQuant into a copy of the weights and quantises graphs exported from that copy
    (the same function; `opset` is the build's); fp8's e4m3 keeps 3 mantissa bits at any magnitude and is left as it is.
    """
    if precision not in ("int8", "fp8"):
        raise ValueError(f"quantize_graphs quantises to int8 or fp8, not {precision!r}")
    per_token.speed_rule()  # a bad $DDT_EXPORT_PER_TOKEN fails now, not after the trajectories
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # the quantiser's advice is for other models
    run = Run(Path(tmp), source, precision, plan or QuantPlan.for_model(source.arch), progress)
    started = time.perf_counter()
    run.say("recording sampling trajectories for the activation ranges")
    data = trajectories.collect(run.tmp, model, source, run.plan)
    out = record.header(precision, run.plan, source, data)
    with tempfile.TemporaryDirectory(prefix="ddt-quant-", dir=run.tmp) as work_dir:
        work = Path(work_dir)
        graphs_from = run.tmp
        if precision == "int8" and run.plan.alpha is not None:
            graphs_from = smoothed_graphs(run, model, data, work, opset, out)
        for name in ("encoder", "decoder"):
            out["graphs"][name] = quantise_graph(run, name, graphs_from, work, data).to_record()
    out["seconds"]["total"] = round(time.perf_counter() - started, 1)
    return out


def smoothed_graphs(run: Run, model, data: Trajectories, work: Path, opset: int, out: dict) -> Path:
    """Export the SmoothQuant-folded model's graphs into work/smoothed (returned); records "smoothing" in `out`."""
    from .smoothing import export_smoothed, smoothed_linears

    t0 = time.perf_counter()
    run.say(f"smoothing activation outliers into the weights (SmoothQuant, alpha {run.plan.alpha:g})")
    folder = work / "smoothed"
    spread = export_smoothed(model, data.ranges["encoder"], data.ranges["decoder"], run.plan.alpha, folder, opset)
    out["smoothing"] = record.smoothing(run.plan.alpha, smoothed_linears(model), spread)
    out["seconds"]["smoothing"] = round(time.perf_counter() - t0, 1)
    return folder


def quantise_graph(run: Run, name: str, graphs_from: Path, work: Path, data: Trajectories) -> record.GraphResult:
    """Quantise graphs_from/<name>.onnx into run.tmp/<name>.onnx: ranges, sensitivities, the choice, the saved graph."""
    t0 = time.perf_counter()
    fp32 = fp32_copy(graphs_from, work, name)
    run.say(f"measuring {name} activation ranges on {len(data.ranges[name])} trajectory batches")
    g = Graph(name, fp32, work, data.ranges[name], data.heldout[name], run.precision, run.source.arch.num_encoder_blocks,
              data.probes[name])
    every_model = g.quantised(list(g.sites))  # also writes the range cache
    ranges_s = time.perf_counter() - t0
    every, alone, alone_max, choice = sensitivities(run, g, every_model)
    del every_model
    run.say(f"quantising {name} ({len(choice.quantised)} of {len(g.sites)} sites)")
    final = g.quantised(choice.quantised)  # the saved graph, as the quantiser writes it; its own errors are recorded
    tokens = None
    if run.precision == "int8" and run.plan.per_token_group and per_token.speed_rule() != "never":
        final, tokens = per_token_sites(run, g, final, choice.float_sites, median_error(alone))
    error, max_rel = g.errors(final)
    ops = op_counts(final)
    save(final, run.tmp / f"{name}.onnx")
    return record.GraphResult(g.sites, alone, alone_max, every, choice, error, max_rel, ops, g.range_tensors(), ranges_s,
                              time.perf_counter() - t0, tokens)


def per_token_sites(run: Run, g: Graph, final: onnx.ModelProto, float_sites: list[str],
                    static_median: float) -> tuple[onnx.ModelProto, record.PerTokenResult]:
    """`final` with the float sites that pass per_token's rule given int8 weights (activations per token at run time)."""
    group, plan = run.plan.per_token_group, run.plan
    matmuls = [n for nodes in g.sites.values() for n in nodes]
    nodes = lambda sites: [n for s in sites for n in g.sites[s]]
    fp32 = load(g.fp32)
    alone, alone_max = {}, {}
    for site in per_token.candidates(float_sites):
        run.say(f"{g.name} per-token sensitivity of {site}")
        alone[site], alone_max[site] = g.errors(per_token.compress(fp32, nodes([site]), matmuls), openvino_group=group)
    del fp32
    chosen, guarded = per_token.choose(
        list(alone), alone, alone_max, static_median, plan.threshold, plan.max_rel,
        max_error=lambda sites: g.errors(per_token.compress(final, nodes(sites), matmuls), openvino_group=group)[1],
        on_guard=lambda site, error: run.say(f"{g.name} per-token max error {error:.2e} > {plan.max_rel:g}: {site} stays float"))
    saved = per_token.compress(final, nodes(chosen), matmuls)
    speed = None
    if chosen and per_token.speed_rule() == "auto":
        run.say(f"{g.name} timing per-token against static on this CPU (OpenVINO)")
        speed = per_token.timed(g, final, saved, group)
        if not per_token.pays(speed):
            saved, chosen = final, []
    error, max_rel = g.errors(saved, openvino_group=group)
    return saved, record.PerTokenResult(alone, alone_max, chosen, guarded, error, max_rel, speed)


def fp32_copy(graphs_from: Path, work: Path, name: str) -> Path:
    """graphs_from/<name>.onnx copied to work/<name>-fp32.onnx, its external weights where the graph names them."""
    fp32 = work / f"{name}-fp32.onnx"
    shutil.copy(graphs_from / f"{name}.onnx", fp32)
    if (graphs_from / f"{name}.onnx.data").exists():
        shutil.copy(graphs_from / f"{name}.onnx.data", work / f"{name}.onnx.data")  # the location the graph names
    return fp32


def sensitivities(run: Run, g: Graph, every_model: onnx.ModelProto) -> tuple[float, dict, dict, SiteChoice]:
    """(error with every site quantised, {site: error alone}, {site: max error alone}, the float-site choice)."""
    every = g.error(every_model)
    alone, alone_max = {}, {}
    for site in g.sites:
        run.say(f"{g.name} sensitivity of {site}")
        alone[site], alone_max[site] = g.errors(g.only(every_model, [site]))
    choice = choose_sites(list(g.sites), alone, alone_max, run.plan.rules,
                          max_error=lambda sites: g.errors(g.only(every_model, sites))[1],
                          on_guard=lambda site, error: run.say(f"{g.name} max error {error:.2e} > {run.plan.max_rel:g}: {site} stays float"))
    return every, alone, alone_max, choice
