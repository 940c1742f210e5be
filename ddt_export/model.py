"""DDT, the Decoupled Diffusion Transformer, as a condition encoder and a velocity decoder.

One module, one readable file. The parameter tree and every number follow the official
implementation (MCG-NJU/DDT, `decoupled_improved_dit.py`) so that its checkpoints load
key for key; see `shared/reference/ddt-reference.md`. Three things differ in *form*, not
in value, so that the graphs export to ONNX and parse in TensorRT:

- patchify/unpatchify are reshape/permute (the official `F.unfold`/`F.fold` export to
  `Col2Im`, which TensorRT cannot parse);
- 2-D RoPE is applied with real cos/sin tables (the official code uses complex tensors);
- RMSNorm, RoPE, the final LayerNorm and the timestep features always compute in fp32, and
  so do the residual stream and the adaLN modulation (shift, scale, gate) applied to it: a
  `.half()` model runs its linears and attention in half precision but keeps fp32 islands
  where DiT-style activations grow large, so a strongly typed TensorRT network keeps them
  (measured by `ddt-export check`; see docs/tensorrt.md). In fp32 every cast is a no-op.

Shapes: B batch, C latent channels, H x W latent size, p patch, N = HW/p^2 tokens,
D hidden size, G heads, d = D/G head size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import DDTConfig


# ----------------------------------------------------------------------------- layers


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, C p p), tokens row-major, features (c, row, col) as F.unfold."""
    B, C, H, W = x.shape
    x = x.reshape(B, C, H // p, p, W // p, p)  # B C h p w p
    x = x.permute(0, 2, 4, 1, 3, 5)  # B h w C p p
    return x.reshape(B, (H // p) * (W // p), C * p * p)  # B N Cpp


def unpatchify(x: torch.Tensor, p: int, C: int, H: int, W: int) -> torch.Tensor:
    """(B, N, C p p) -> (B, C, H, W), the inverse of `patchify` (F.fold's layout)."""
    B = x.shape[0]
    x = x.reshape(B, H // p, W // p, C, p, p)  # B h w C p p
    x = x.permute(0, 3, 1, 4, 2, 5)  # B C h p w p
    return x.reshape(B, C, H, W)


def rope_tables(head_dim: int, grid: int, theta: float = 10000.0, scale: float = 16.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and signed sin, each (N, d), of the official 2-D RoPE on a grid x grid token map, one value per feature.

    Positions span [0, scale] whatever the grid; rotation pair j uses the x position for even j
    and the y position for odd j, both at frequency freqs[j // 2]. Computed in fp32 with the
    same operations as the official complex table, so the angles are bit-identical. Feature 2j and
    2j+1 share pair j's angle: cos is (c_j, c_j), sin carries the rotation's signs (-s_j, +s_j).
    """
    pos = torch.linspace(0, scale, grid)
    y_pos, x_pos = torch.meshgrid(pos, pos, indexing="ij")
    y_pos, x_pos = y_pos.reshape(-1), x_pos.reshape(-1)  # N
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 4)[: head_dim // 4].float() / head_dim))  # d/4
    x_ang = torch.outer(x_pos, freqs).float()  # N d/4
    y_ang = torch.outer(y_pos, freqs).float()  # N d/4
    angles = torch.stack([x_ang, y_ang], dim=-1).reshape(x_pos.numel(), -1)  # N d/2: x0 y0 x1 y1 ...
    cos, sin = angles.cos(), angles.sin()  # N d/2
    signs = torch.tensor([-1.0, 1.0])
    return cos.repeat_interleave(2, dim=-1), (sin[..., None] * signs).reshape(x_pos.numel(), -1)  # N d each


PAIR_SWAP = [1, 0]  # x0 x1 -> x1 x0 within each rotation pair


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent feature pairs of (B, N, G, d) by the per-token angles, in fp32: x cos + swap(x) sin.

    With rope_tables' tables, feature 2j gets a c - b s and 2j+1 gets b c + a s, bit for bit the complex
    product. No stack of the two rotated halves: OpenVINO ran that Concat on its reference kernels, 15-27% of
    an int8 call (benchmarks/int8_per_token.md); the pair swap is a Gather.
    """
    B, N, G, d = x.shape
    xf = x.float()  # B N G d
    swap = torch.tensor(PAIR_SWAP, device=x.device)  # a constant of the graph: index_select exports as Gather
    swapped = xf.reshape(B, N, G, d // 2, 2).index_select(-1, swap).reshape(B, N, G, d)  # B N G d
    return (xf * cos[None, :, None, :] + swapped * sin[None, :, None, :]).to(x.dtype)  # B N G d


class RMSNorm(nn.Module):
    """RMSNorm with the reduction in fp32 whatever the model's dtype (a TensorRT fp32 island)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class Embed(nn.Module):
    """Linear patch embedding (the official `Embed`; its norm is an identity)."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class TimestepEmbedder(nn.Module):
    def __init__(self, dim: int, freq_dim: int = 256, max_period: float = 10.0):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.freq_dim = freq_dim
        self.max_period = max_period  # 10, not DiT's 10000: t lives in [0, 1]

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(self.max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = t.float()[:, None] * freqs[None]  # B half
        feats = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # B 256
        return self.mlp(feats.to(self.mlp[0].weight.dtype))  # B D


class LabelEmbedder(nn.Module):
    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + 1, dim)  # + the null class

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.embedding_table(y)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_norm = RMSNorm(dim // heads)
        self.k_norm = RMSNorm(dim // heads)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, D // self.heads)  # B N 3 G d
        q, k, v = qkv.unbind(2)  # B N G d each
        q = apply_rope(self.q_norm(q), cos, sin).transpose(1, 2)  # B G N d
        k = apply_rope(self.k_norm(k), cos, sin).transpose(1, 2)  # B G N d
        o = F.scaled_dot_product_attention(q, k, v.transpose(1, 2))  # B G N d
        return self.proj(o.transpose(1, 2).reshape(B, N, D))  # B N D


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    """adaLN block shared by encoder (condition (B, 1, D)) and decoder (condition (B, N, D))."""

    def __init__(self, cfg: DDTConfig):
        super().__init__()
        D = cfg.hidden_size
        self.norm1 = RMSNorm(D)
        self.attn = Attention(D, cfg.num_groups)
        self.norm2 = RMSNorm(D)
        self.mlp = SwiGLU(D, cfg.mlp_hidden)
        self.adaLN_modulation = nn.Sequential(nn.Linear(D, 6 * D))

    def forward(self, x: torch.Tensor, c: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        # x: the fp32 residual stream; linears and attention run in the weights' dtype.
        dt = self.adaLN_modulation[0].weight.dtype
        mod = self.adaLN_modulation(c.to(dt)).float()  # B 1|N 6D, modulation in fp32
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, dim=-1)
        x = x + gate_msa * self.attn(modulate(self.norm1(x), shift_msa, scale_msa).to(dt), cos, sin).float()  # B N D
        x = x + gate_mlp * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp).to(dt)).float()  # B N D
        return x


class FinalLayer(nn.Module):
    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, out_dim)
        self.adaLN_modulation = nn.Sequential(nn.Linear(dim, 2 * dim))

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(s).float().chunk(2, dim=-1)  # B N D each, fp32
        # LayerNorm in fp32 like RMSNorm: its variance overflows fp16 on large activations.
        xn = self.norm_final(x.float())
        return self.linear(modulate(xn, shift, scale).to(self.linear.weight.dtype))  # B N Cpp


# ----------------------------------------------------------------------------- model


class DDT(nn.Module):
    """The whole DDT. `encode` and `decode` are the two graphs; `forward` is the official call."""

    def __init__(self, cfg: DDTConfig):
        super().__init__()
        self.cfg = cfg
        C, p, D = cfg.in_channels, cfg.patch_size, cfg.hidden_size
        self.x_embedder = Embed(C * p * p, D)
        self.s_embedder = Embed(C * p * p, D)
        self.t_embedder = TimestepEmbedder(D)
        self.y_embedder = LabelEmbedder(cfg.num_classes, D)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_blocks))
        self.final_layer = FinalLayer(D, C * p * p)
        cos, sin = rope_tables(cfg.head_dim, cfg.latent_size // p)
        # Not in the state dict: derived from the config, as in the official fetch_pos.
        self.register_buffer("rope_cos", cos, persistent=False)  # N d
        self.register_buffer("rope_sin", sin, persistent=False)  # N d (signed per pair)

    def encode(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Condition encoder: latent (B,C,H,W), time (B,), label (B,) -> self-condition s (B,N,D)."""
        cos, sin = self.rope_cos, self.rope_sin
        tokens = patchify(x, self.cfg.patch_size).to(self.x_embedder.proj.weight.dtype)  # B N Cpp
        t_emb = self.t_embedder(t)[:, None]  # B 1 D
        c = F.silu(t_emb + self.y_embedder(y)[:, None])  # B 1 D
        s = self.s_embedder(tokens).float()  # B N D, the fp32 residual stream
        for block in self.blocks[: self.cfg.num_encoder_blocks]:
            s = block(s, c, cos, sin)  # B N D
        return F.silu(t_emb + s).to(tokens.dtype)  # B N D: carries the timestep it was computed at

    def decode(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Velocity decoder: latent (B,C,H,W), self-condition (B,N,D) -> velocity (B,C,H,W)."""
        C, H, W = x.shape[1:]
        cos, sin = self.rope_cos, self.rope_sin
        dt = self.x_embedder.proj.weight.dtype
        h = self.x_embedder(patchify(x, self.cfg.patch_size).to(dt)).float()  # B N D, the fp32 residual stream
        s = s.to(dt)
        for block in self.blocks[self.cfg.num_encoder_blocks :]:
            h = block(h, s, cos, sin)  # B N D, conditioned per token
        v = self.final_layer(h, s)  # B N Cpp
        return unpatchify(v, self.cfg.patch_size, C, H, W).to(x.dtype)  # B C H W

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, s: torch.Tensor | None = None):
        """The official signature: returns (v, s), computing s only when none is given."""
        if s is None:
            s = self.encode(x, t, y)
        return self.decode(x, s), s


class EncoderGraph(nn.Module):
    """What `encoder.onnx` computes: (x, t, y) -> s, fp32 latents in whatever the model's dtype."""

    def __init__(self, model: DDT):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.model.encode(x, t, y)


class DecoderGraph(nn.Module):
    """What `decoder.onnx` computes: (x, s) -> v."""

    def __init__(self, model: DDT):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return self.model.decode(x, s)


def init_random(model: DDT, seed: int = 0) -> DDT:
    """Deterministic random weights for benchmarking and tests.

    Unlike DiT's training init, nothing is zero: zero adaLN gates would make every block an
    identity and parity tests vacuous.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or ".norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.ndim == 1:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))
    return model
