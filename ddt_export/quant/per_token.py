"""Per-token int8 for the sites per-tensor scales fail: int8 weights in the graph, activations quantised at run time.

The static scheme (graph.py) gives a matmul input one scale for every token of every call. A site
whose input is modulated per token (the decoder's adaLN reads the per-token state s) has token-wise
outliers one scale cannot follow, and the sensitivity rule (sites.py) keeps it float. Here such a
site gets the scheme the field uses for token-wise outliers (LLM.int8-style W8A8 per token):

- weights int8, symmetric, per output channel, stored in the graph as int8 + DequantizeLinear by
  NNCF's `compress_weights` (INT8_SYM), the library OpenVINO's own tools quantise weights with;
- activations quantised at run time, one scale per token and per group of GROUP_SIZE input channels,
  by the runtime that can: OpenVINO's CPU plugin does this for int8-compressed weights
  (DYNAMIC_QUANTIZATION_GROUP_SIZE), which backends/openvino_backend.py sets from the manifest.

onnxruntime's CPU provider has no per-token activation int8 for standard-domain graphs (its dynamic
quantisation is one scale per tensor; MatMulNBits' int8 compute needs blocked 4/8-bit weights, a
contrib op OpenVINO and TensorRT do not share): its backend folds these weights back to float once
at load and runs the matmuls in fp32. TensorRT reads them as weight-only int8 (float activations).
The manifest records this per runtime (`RUNTIMES`).

A float site goes per-token when, quantised alone this way (measured in OpenVINO, the runtime that
runs it), its error is within the static rule's bound (threshold x the median static site's error);
then the max-error guard of the static scheme applies to the saved graph, measured the same way.
Last, speed: whether per-token pays depends on the CPU (on an AMX Intel Xeon, OpenVINO's bf16 runs the
B/2 decoder's float sites faster than per-token int8; on an AMD Zen 4 per-token ran 1.3-1.5x bf16;
benchmarks/int8_per_token.md), so a graph keeps its per-token sites only where OpenVINO on the build's
CPU runs it faster with them (`timed`, `pays`; $DDT_EXPORT_PER_TOKEN overrides, `speed_rule`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import statistics
import time
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from ..bench.machine import cpu_name
from ..errors import DDTError

if TYPE_CHECKING:  # plan.py reads GROUP_SIZE without loading onnx
    import onnx

GROUP_SIZE = 64  # input channels per activation scale (OpenVINO's default is 32; see benchmarks/int8.md)
WEIGHTLESS = ("attention_scores", "attention_values")  # activation x activation: nothing to compress

WEIGHTS = "int8, symmetric (scale max |w| / 128), per output channel (NNCF compress_weights INT8_SYM: int8 initializer + DequantizeLinear)"
RUNTIMES = {
    "openvino": "activations int8 at run time, one scale per token and group of {group} input channels "
                "(CPU plugin dynamic quantisation, DYNAMIC_QUANTIZATION_GROUP_SIZE {group})",
    "onnxruntime": "float: the int8 weights are folded back to fp32 at load and the matmul runs in fp32 "
                   "(no per-token activation int8 for standard-domain graphs)",
    "tensorrt": "weight-only int8 (float activations)",
}
RULE = ("a site kept float by the static rule goes per-token when, quantised alone this way and run by OpenVINO "
        "(inference precision f32, group {group}), its error is < {threshold:g} x the median static site's error; then the "
        "max-error guard (<= {max_rel:g}) on the saved graph, measured the same way, sends sites back to float; last, a graph "
        "keeps its per-token sites only where OpenVINO on the build's CPU runs it faster with them (per_token_speed; "
        "$DDT_EXPORT_PER_TOKEN=always|never overrides)")


def speed_rule() -> str:
    """$DDT_EXPORT_PER_TOKEN: "auto" (default: keep a graph's per-token sites only where OpenVINO on the build's CPU runs it
    faster with them), "always" (keep them whatever the speed: experiments, and the tests' small models), "never"."""
    rule = os.environ.get("DDT_EXPORT_PER_TOKEN", "auto")
    if rule not in ("auto", "always", "never"):
        raise DDTError(f"DDT_EXPORT_PER_TOKEN={rule!r}; use auto, always or never (or unset it)")
    return rule


def timed(g, static: onnx.ModelProto, per_token: onnx.ModelProto, group: int, rounds: int = 5) -> dict:
    """Median ms per call of the graph without and with its per-token sites, OpenVINO as the backend compiles it by
    default on this CPU (bf16 where it has bf16), the first held-out batch, interleaved rounds after a warm-up."""
    import openvino as ov

    from .graph import save

    core = ov.Core()
    hint = "bf16" if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES") else "f32"  # the backend's default
    feeds = g.heldout[0]
    runs = {}
    for name, model in (("static", static), ("per_token", per_token)):
        path = g.work / f"{g.name}-timing-{name}.onnx"
        save(model, path)
        compiled = core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY",
                                                         "DYNAMIC_QUANTIZATION_GROUP_SIZE": group})
        runs[name] = compiled.create_infer_request()
        runs[name].infer(feeds)
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, req in runs.items():
            t0 = time.perf_counter()
            req.infer(feeds)
            times[name].append(time.perf_counter() - t0)
    return {"static_ms": 1e3 * statistics.median(times["static"]), "per_token_ms": 1e3 * statistics.median(times["per_token"]),
            "inference_precision": hint, "rows": int(next(iter(feeds.values())).shape[0]), "rounds": rounds,
            "cpu": cpu_name()}


def pays(speed: dict) -> bool:
    """Per-token is kept when it is faster than static-with-float-sites on the build's CPU."""
    return speed["per_token_ms"] < speed["static_ms"]


def candidates(sites: Sequence[str]) -> list[str]:
    """The sites (of `sites`) that have a weight to compress."""
    return [s for s in sites if s not in WEIGHTLESS]


def compress(model: onnx.ModelProto, nodes: Sequence[str], all_matmuls: Sequence[str]) -> onnx.ModelProto:
    """`model` with the weights of `nodes` (MatMul names) int8 per output channel; every other matmul as it was."""
    import nncf

    if not nodes:
        return model
    nncf.set_log_level(logging.ERROR)  # its tables and progress bars are for interactive use
    keep = set(nodes)
    model = _copy(model)  # compress_weights may edit its argument; callers compress one graph many ways
    # every other matmul, and the label embedding's Gather (NNCF compresses embedding tables too), as they were
    ignored = nncf.IgnoredScope(names=[n for n in all_matmuls if n not in keep], types=["Gather"], validate=False)
    with contextlib.redirect_stdout(io.StringIO()):  # its progress bar would cut through the build's own
        out = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_SYM, ignored_scope=ignored)
    done = compressed_matmuls(out) - compressed_matmuls(model)
    if done != keep:  # a silent skip or an extra site would record a scheme the graph does not have
        raise RuntimeError(f"NNCF compressed {sorted(done ^ keep)[:3]}... against the {len(keep)} matmuls asked for")
    _zero_points(out)
    return out


def _zero_points(model: onnx.ModelProto) -> None:
    """Give NNCF's DequantizeLinear nodes their (optional, zero) int8 zero point: TensorRT's Q/DQ rule as the static
    graphs meet it (tests/backends/tensorrt/test_graph_ops.py), the same numbers for every runtime."""
    import numpy as np
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear" and len(n.input) == 2 and n.input[1] in inits:
            zp = numpy_helper.from_array(np.zeros(tuple(inits[n.input[1]].dims), np.int8), f"{n.input[1]}_zero_point")
            model.graph.initializer.append(zp)
            n.input.append(zp.name)


def compressed_matmuls(model: onnx.ModelProto) -> set[str]:
    """Names of the MatMul/Gemm nodes whose weight is an int8 initializer's DequantizeLinear with no activation Q/DQ."""
    from onnx import TensorProto

    inits = {t.name: t for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    out = set()
    for n in model.graph.node:
        if n.op_type not in ("MatMul", "Gemm") or len(n.input) < 2:
            continue
        w, x = producers.get(n.input[1]), producers.get(n.input[0])
        weight_only = w is not None and w.op_type == "DequantizeLinear" and w.input[0] in inits \
            and inits[w.input[0]].data_type == TensorProto.INT8
        if weight_only and not (x is not None and x.op_type == "DequantizeLinear"):
            out.add(n.name)
    return out


def choose(cands: Sequence[str], alone: Mapping[str, float], alone_max: Mapping[str, float], static_median: float,
           threshold: float, max_rel: float, max_error: Callable[[list[str]], float],
           on_guard: Callable[[str, float], None] = lambda site, error: None) -> tuple[list[str], list[dict]]:
    """(the per-token sites in candidate order, the guard's record), from each candidate's error alone under this scheme.

    The ratio rule of the static scheme, scored against the static sites' median; then while the graph with the
    chosen sites per-token has max error > max_rel (`max_error`, measured by the caller), the chosen site with the
    largest max error alone goes back to float.
    """
    chosen = [s for s in cands if alone[s] < threshold * static_median]
    guarded: list[dict] = []
    error = max_error(list(chosen)) if chosen else 0.0
    while chosen and error > max_rel:
        worst = max(chosen, key=alone_max.get)
        guarded.append({"site": worst, "max_rel_error_before": error})
        chosen.remove(worst)
        on_guard(worst, error)
        error = max_error(list(chosen)) if chosen else 0.0
    return chosen, guarded


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out
