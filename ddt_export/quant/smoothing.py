"""SmoothQuant for DDT: the per-channel factors, folded exactly into a copy of the weights, and that copy's graphs exported.

Per-tensor int8 activations give every channel of a matmul input the same step, amax / 127, so a
few large channels cost the small ones their precision. SmoothQuant (Xiao et al., 2023) divides
input channel j by s_j = amax_j^alpha / wmax_j^(1 - alpha) and multiplies the weight's column j
by s_j: the product is unchanged, the activation's channels are evened out, and the per-output-
channel int8 weights absorb the rest. In DDT each smoothed input comes out of a per-channel
linear map, so 1/s folds into weights that already exist and the graph gains no op (onnxruntime,
OpenVINO and TensorRT read the same QDQ graph as without smoothing):

    linear               its input                                 where 1/s goes
    attn.qkv             modulate(norm1(x), shift_msa, scale_msa)  norm1.weight and adaLN's shift_msa rows
    mlp.w1, mlp.w3       modulate(norm2(x), shift_mlp, scale_mlp)  norm2.weight and adaLN's shift_mlp rows
    mlp.w2               silu(w1 x) * (w3 x)                       w3's rows
    attn.proj            softmax(q k^T / sqrt(d)) v                qkv's v rows
    final_layer.linear   modulate(LayerNorm(x), shift, scale)      the final adaLN's shift rows, and its scale
                                                                   rows so that 1 + scale' = (1 + scale) / s

The embedders and adaLN linears read graph inputs or silu(...) and keep their inputs as they are.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import nn

from ..model import DDT, DecoderGraph, EncoderGraph

ALPHA = 0.5  # SmoothQuant's default: the activation and weight ranges meet halfway


def smoothed_linears(model: DDT) -> list[str]:
    """The linears whose inputs are smoothed (w3 shares w1's input and factor)."""
    names = [f"blocks.{i}.{leaf}" for i in range(len(model.blocks)) for leaf in ("attn.qkv", "attn.proj", "mlp.w1", "mlp.w2")]
    return [*names, "final_layer.linear"]


def input_amax(model: DDT, encoder_feeds: Iterable[dict], decoder_feeds: Iterable[dict]) -> dict[str, torch.Tensor]:
    """{linear: max |input| per input channel (D_in,)} over the recorded graph inputs (feeds keyed by graph input name)."""
    modules = dict(model.named_modules())
    amax: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def record(_module, args):
            a = args[0].detach().abs().float().reshape(-1, args[0].shape[-1]).amax(0)  # D_in
            amax[name] = torch.maximum(amax[name], a) if name in amax else a
        return record

    handles = [modules[name].register_forward_pre_hook(hook(name)) for name in smoothed_linears(model)]
    try:
        with torch.no_grad():
            for graph, feeds in ((EncoderGraph(model), encoder_feeds), (DecoderGraph(model), decoder_feeds)):
                for f in feeds:
                    graph(**{k: torch.from_numpy(v) for k, v in f.items()})
    finally:
        for h in handles:
            h.remove()
    return amax


def factors(amax: torch.Tensor, weights: Iterable[torch.Tensor], alpha: float) -> torch.Tensor:
    """s_j = amax_j^alpha / max_i |W_ij|^(1 - alpha) over every weight reading this input (D_in,)."""
    wmax = torch.cat([w.detach().float() for w in weights], 0).abs().amax(0)  # D_in
    return amax.clamp(min=1e-5) ** alpha / wmax.clamp(min=1e-5) ** (1 - alpha)


def smooth(model: DDT, amax: dict[str, torch.Tensor], alpha: float = ALPHA) -> tuple[DDT, dict[str, torch.Tensor]]:
    """(a copy of `model` computing the same function with every smoothed linear's input divided by its factors,
    {linear: factors s (D_in,)}); the smoothed inputs' ranges are exactly amax / s."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"SmoothQuant alpha must be in [0, 1], not {alpha}")
    out = copy.deepcopy(model)
    D = out.cfg.hidden_size
    used: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for i, b in enumerate(out.blocks):
            p = f"blocks.{i}."
            ada = b.adaLN_modulation[0]  # rows: shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp
            # every factor from the original weights, then the folds (row and column scalings commute)
            s_qkv = factors(amax[p + "attn.qkv"], [b.attn.qkv.weight], alpha)
            s_mlp = factors(amax[p + "mlp.w1"], [b.mlp.w1.weight, b.mlp.w3.weight], alpha)
            s_w2 = factors(amax[p + "mlp.w2"], [b.mlp.w2.weight], alpha)
            s_proj = factors(amax[p + "attn.proj"], [b.attn.proj.weight], alpha)
            used.update({p + "attn.qkv": s_qkv, p + "mlp.w1": s_mlp, p + "mlp.w2": s_w2, p + "attn.proj": s_proj})
            _into_norm_and_shift(b.norm1.weight, ada, slice(0, D), s_qkv)
            b.attn.qkv.weight.mul_(s_qkv[None])
            _into_norm_and_shift(b.norm2.weight, ada, slice(3 * D, 4 * D), s_mlp)
            b.mlp.w1.weight.mul_(s_mlp[None])
            b.mlp.w3.weight.mul_(s_mlp[None])
            b.mlp.w3.weight.div_(s_w2[:, None])
            b.mlp.w2.weight.mul_(s_w2[None])
            b.attn.qkv.weight[2 * D :].div_(s_proj[:, None])  # v rows; q and k (normed, rotated) untouched
            b.attn.proj.weight.mul_(s_proj[None])
        fl = out.final_layer
        ada = fl.adaLN_modulation[0]  # rows: shift, scale
        s = used["final_layer.linear"] = factors(amax["final_layer.linear"], [fl.linear.weight], alpha)
        ada.weight[:D].div_(s[:, None])
        ada.bias[:D].div_(s)
        ada.weight[D:].div_(s[:, None])
        ada.bias[D:].copy_((ada.bias[D:] + 1) / s - 1)
        fl.linear.weight.mul_(s[None])
    return out, used


def channel_spread(amax: dict[str, torch.Tensor]) -> float:
    """Median over the linears of max channel amax / median channel amax: how uneven the smoothed inputs' channels are."""
    return float(np.median([float(v.max() / v.median().clamp(min=1e-12)) for v in amax.values()]))


def export_smoothed(model: DDT, encoder_feeds: list[dict], decoder_feeds: list[dict], alpha: float, out: Path,
                    opset: int) -> tuple[float, float]:
    """Export encoder and decoder of the SmoothQuant-folded `model` to out/, with factors from the ranges the feeds give;
    returns the channel spread of the smoothed linears' inputs before and after (after: amax / s, exactly)."""
    from ..export import example_inputs, export_graph, graph_modules

    amax = input_amax(model, encoder_feeds, decoder_feeds)
    smoothed, factors = smooth(model, amax, alpha)
    out.mkdir()
    for spec, module in graph_modules(smoothed, "fp32"):
        export_graph(module, spec, example_inputs(spec, smoothed, batch=2), out / spec.file, opset)
    return channel_spread(amax), channel_spread({name: amax[name] / s for name, s in factors.items()})


def _into_norm_and_shift(norm_weight: nn.Parameter, ada: nn.Linear, shift_rows: slice, s: torch.Tensor) -> None:
    # modulate(norm(x), shift, scale) / s = (norm.weight / s) * xhat * (1 + scale) + shift / s
    norm_weight.div_(s)
    ada.weight[shift_rows].div_(s[:, None])
    ada.bias[shift_rows].div_(s)
