"""Where a DDT graph's quantisable matmuls sit (named site groups) and which sites stay float, chosen from measured errors.

Every MatMul/Gemm of an exported encoder or decoder belongs to one named site group (found from
the exporter's module scopes): the unit the quantiser measures sensitivity on and keeps in float.
The choice of float sites is a pure function of the errors measured per site (`choose_sites`), so
it is tested on plain dicts; nothing here imports onnx or torch.

Per-tensor int8 costs every matmul input about the same relative error (its step is amax / 127),
so most sites cluster around one value; a site far above that cluster has outliers or amplifies its
error downstream, and is where float pays. The ratio rule compares sites with each other, so it
holds whatever the model's overall error level. A ratio says nothing of the worst single output,
so a max-error guard then sends more sites to float, largest max error alone first, until the graph
with the rest quantised keeps max |q - f| / max |f| within a bound.
"""

from __future__ import annotations

import ast
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

if TYPE_CHECKING:
    import onnx

QUANTISED_OPS = ("MatMul", "Gemm")

# Site groups, each named after what it computes. Every MatMul/Gemm of a DDT graph is in exactly one.
SITES = {
    "timestep_embedder": "t_embedder MLP (B x 256 -> D): a GEMV per sample",
    "patch_embedding": "x_embedder / s_embedder: patch -> token linear",
    "encoder_adaln": "encoder adaLN Linear(D, 6D) on c = silu(t_emb + y_emb): per sample (B x 1 x D)",
    "decoder_adaln": "decoder adaLN Linear(D, 6D) on s: per token (B x N x D)",
    "qkv": "attention qkv Linear(D, 3D)",
    "attention_scores": "attention Q K^T (activation x activation)",
    "attention_values": "attention softmax(Q K^T) V (activation x activation)",
    "attention_proj": "attention output Linear(D, D)",
    "swiglu_w1_w3": "SwiGLU first matmuls w1 x, w3 x",
    "swiglu_w2": "SwiGLU second matmul, input silu(w1 x) * w3 x",
    "final_adaln": "final layer adaLN Linear(D, 2D) on s, per token",
    "final_linear": "final layer Linear(D, C p^2)",
}


# ----------------------------------------------------------------------------- where the sites are


def _scopes(node: onnx.NodeProto) -> list[str]:
    meta = {p.key: p.value for p in node.metadata_props}
    try:
        return list(ast.literal_eval(meta.get("pkg.torch.onnx.name_scopes", "[]")))
    except (ValueError, SyntaxError):
        return []


def site_of(node: onnx.NodeProto, producers: dict[str, onnx.NodeProto], num_encoder_blocks: int) -> str | None:
    """The site group of a MatMul/Gemm node, from the exporter's module scopes (None: not a DDT site)."""
    path = " ".join(_scopes(node))
    if "t_embedder" in path:
        return "timestep_embedder"
    if "x_embedder" in path or "s_embedder" in path:
        return "patch_embedding"
    if "final_layer.adaLN_modulation" in path:
        return "final_adaln"
    if "final_layer.linear" in path:
        return "final_linear"
    if "adaLN_modulation" in path:
        block = int(path.split("blocks.")[1].split(".")[0].split()[0])
        return "encoder_adaln" if block < num_encoder_blocks else "decoder_adaln"
    if "attn.qkv" in path:
        return "qkv"
    if "attn.proj" in path:
        return "attention_proj"
    if "mlp.w2" in path:
        return "swiglu_w2"
    if "mlp.w1" in path or "mlp.w3" in path:
        return "swiglu_w1_w3"
    if "scaled_dot_product_attention" in path:
        return "attention_values" if _after_softmax(node.input[0], producers) else "attention_scores"
    return None


def _after_softmax(name: str, producers: dict[str, onnx.NodeProto], depth: int = 4) -> bool:
    node = producers.get(name)
    for _ in range(depth):
        if node is None:
            return False
        if node.op_type == "Softmax":
            return True
        node = producers.get(node.input[0]) if node.input else None
    return False


def site_nodes(model: onnx.ModelProto, num_encoder_blocks: int) -> dict[str, list[str]]:
    """{site: [node names]} over the graph's MatMul/Gemm nodes; every one must belong to a site."""
    producers = {o: n for n in model.graph.node for o in n.output}
    out: dict[str, list[str]] = {}
    for n in model.graph.node:
        if n.op_type in QUANTISED_OPS:
            site = site_of(n, producers, num_encoder_blocks)
            if site is None:
                raise RuntimeError(f"{n.name} ({n.op_type}) belongs to no known site; update ddt_export.quant.sites.SITES")
            out.setdefault(site, []).append(n.name)
    return out


# ----------------------------------------------------------------------------- which sites stay float


@dataclass(frozen=True)
class SiteRules:
    """How the float sites are chosen (QuantPlan.rules gives the build's)."""

    threshold: float = 1.5  # a site stays float when quantising it alone costs >= this x the median site's error
    max_rel: float = 0.1  # then more sites go float until the graph's max |q - f| / max |f| <= this
    forced: tuple[str, ...] | None = None  # given: exactly these stay float, no ratio rule and no guard (experiments)


@dataclass(frozen=True)
class SiteChoice:
    """The sites that stay float and those quantised (in site order), and what the max-error guard added, in order."""

    float_sites: list[str]
    quantised: list[str]
    guarded: list[dict]  # {"site": it went float, "max_rel_error_before": the graph's max error that sent it}

    def by_guard(self, site: str) -> bool:
        return any(g["site"] == site for g in self.guarded)


def median_error(alone: Mapping[str, float]) -> float:
    """The median site's error quantised alone: what the ratio rule compares with."""
    return float(statistics.median(alone.values()))


def choose_float_sites(alone: Mapping[str, float], ratio: float) -> list[str]:
    """The ratio rule: the sites whose error, quantised alone, is >= `ratio` x the median site's (sorted)."""
    if not alone:
        return []
    median = median_error(alone)
    return sorted(s for s, e in alone.items() if e >= ratio * median)


def choose_sites(sites: Sequence[str], alone: Mapping[str, float], alone_max: Mapping[str, float], rules: SiteRules,
                 max_error: Callable[[list[str]], float],
                 on_guard: Callable[[str, float], None] = lambda site, error: None) -> SiteChoice:
    """Which of `sites` stay float, from each one's error quantised alone (`alone`: relative L2, `alone_max`: max relative).

    `rules.forced` given: exactly those stay float. Otherwise the ratio rule picks the float sites,
    then the max-error guard: while `max_error(quantised sites)` (the graph's max relative error with
    just those quantised, measured by the caller) exceeds `rules.max_rel`, the quantised site with
    the largest max error alone goes float too (`on_guard(site, error before)` is told).
    """
    if rules.forced is not None:
        float_sites = [s for s in sites if s in rules.forced]
        return SiteChoice(float_sites, [s for s in sites if s not in float_sites], [])
    float_sites = choose_float_sites({s: alone[s] for s in sites}, rules.threshold)
    quantised = [s for s in sites if s not in float_sites]
    guarded: list[dict] = []
    error = max_error(list(quantised)) if quantised else 0.0
    while quantised and error > rules.max_rel:
        worst = max(quantised, key=alone_max.get)
        guarded.append({"site": worst, "max_rel_error_before": error})
        quantised.remove(worst)
        float_sites = sorted([*float_sites, worst])
        on_guard(worst, error)
        error = max_error(list(quantised)) if quantised else 0.0
    return SiteChoice(float_sites, quantised, guarded)
