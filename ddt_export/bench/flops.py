"""Multiply-adds (MACs) of the encoder and decoder graphs, counted from the architecture.

Only matrix products are counted (linear layers and the two attention products): norms,
RoPE, SiLU, modulation and residual adds are O(N D) per block against O(N D^2) and do not
change the ideal. Counts are per sample; a CFG call at user batch B runs 2B samples.

Per block, N tokens, D hidden, H = mlp_hidden:
    qkv 3 N D^2 + proj N D^2 + SwiGLU 3 N D H + attention 2 N^2 D   (both graphs)
    adaLN 6 D^2 per sample in the encoder (one condition vector per sample),
          6 N D^2 in the decoder (conditioned per token on s): a decoder block costs
          about 1.5 encoder blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import DDTConfig

FREQ_DIM = 256  # the timestep embedder's sinusoidal features (model.TimestepEmbedder)


@dataclass(frozen=True)
class GraphMacs:
    """MACs of one graph for one sample, by part (the sum is `total`)."""

    embed: int  # patch embedding (+ the timestep MLP in the encoder)
    blocks: int  # all transformer blocks of the graph
    final: int  # the decoder's final layer (0 for the encoder)

    @property
    def total(self) -> int:
        return self.embed + self.blocks + self.final

    def to_dict(self) -> dict:
        return {"embed": self.embed, "blocks": self.blocks, "final": self.final, "total": self.total}


def block_macs(cfg: DDTConfig, per_token_condition: bool) -> int:
    """One adaLN block on one sample; the decoder's condition is per token, the encoder's per sample."""
    N, D, H = cfg.num_tokens, cfg.hidden_size, cfg.mlp_hidden
    attention = 3 * N * D * D + N * D * D + 2 * N * N * D  # qkv, proj, QK^T and AV over all heads
    mlp = 3 * N * D * H  # w1, w3: D -> H; w2: H -> D
    adaln = 6 * D * D * (N if per_token_condition else 1)
    return attention + mlp + adaln


def encoder_macs(cfg: DDTConfig) -> GraphMacs:
    N, D, patch = cfg.num_tokens, cfg.hidden_size, cfg.in_channels * cfg.patch_size**2
    embed = N * patch * D + FREQ_DIM * D + D * D  # s_embedder; t_embedder's two linears
    return GraphMacs(embed, cfg.num_encoder_blocks * block_macs(cfg, per_token_condition=False), 0)


def decoder_macs(cfg: DDTConfig) -> GraphMacs:
    N, D, patch = cfg.num_tokens, cfg.hidden_size, cfg.in_channels * cfg.patch_size**2
    final = N * D * 2 * D + N * D * patch  # adaLN (shift, scale) per token; the output linear
    return GraphMacs(N * patch * D, cfg.num_decoder_blocks * block_macs(cfg, per_token_condition=True), final)


def ideal_speedup(encoder_cost: float, decoder_cost: float, encoder_calls: int, num_steps: int) -> float:
    """Speed-up over running the encoder at every step, if only the graphs cost anything.

    A run of N steps with K encoder calls costs N D + K E; without sharing it costs N (E + D),
    so the ideal is (E + D) / (D + E K / N). Costs may be MACs or measured per-call times.
    """
    if not 1 <= encoder_calls <= num_steps:
        raise ValueError(f"encoder calls {encoder_calls} must be in [1, {num_steps}]")
    return (encoder_cost + decoder_cost) / (decoder_cost + encoder_cost * encoder_calls / num_steps)


def run_cost(encoder: tuple[float, float], decoder: tuple[float, float], encode_both: dict[int, bool], decode_both: list[bool]) -> float:
    """Cost of one sampling run with guidance-aware batches: each call costs `graph[1]` on both CFG halves and
    `graph[0]` on the conditional half alone (for MACs: 2x and 1x the per-sample count; for time: the measured calls).

        cost = sum over steps i of D(rows_i) + sum over recompute steps r of E(rows_r)

    where rows is both halves where the decoder's step is guided (or the encoder's state serves a guided step),
    else the conditional half (sampler.cfg_halves)."""
    return sum(decoder[b] for b in decode_both) + sum(encoder[b] for b in encode_both.values())
