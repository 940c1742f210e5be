"""Independent test oracle: a plain transcription of the official DDT code.

Transcribed from the specification in ``/work/shared/reference/ddt-reference.md``
(official repository github.com/MCG-NJU/DDT, commit 1d1b4d2:
``src/models/denoiser/decoupled_improved_dit.py`` and
``src/diffusion/stateful_flow_matching/sharing_sampling.py``, ``adam_sampling.py``, ``src/diffusion/pre_integral.py``). It deliberately keeps
the official formulation so that the export-friendly model in ``ddt_export`` can be
checked against it:

* patchify / unpatchify with ``F.unfold`` / ``F.fold``;
* 2-D RoPE with complex tensors (``torch.polar`` / ``torch.view_as_complex``);
* RMSNorm computed in fp32 and cast back before the learned weight.

Nothing here imports ``ddt_export``: this file must stay independent of the code
under test.

Shape legend: B batch, C latent channels, H/W latent height/width, p patch size,
N = (H/p)*(W/p) tokens, D hidden size, G heads ("groups"), d = D/G head dim.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

__all__ = [
    "OfficialDDT",
    "official_timesteps",
    "official_sample",
    "official_adams_sample",
    "official_adams_coefficients",
    "official_similarity",
    "official_dp",
    "random_official_weights",
    "write_official_checkpoint",
    "write_official_yaml",
    "precompute_freqs_cis_2d",
    "apply_rotary_emb",
]


# --------------------------------------------------------------------------------------
# Building blocks (module/attribute names follow the official module tree, so that the
# state_dict keys are the official checkpoint keys).
# --------------------------------------------------------------------------------------


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN modulation ``x * (1 + scale) + shift`` (shift/scale broadcast over tokens)."""
    return x * (1 + scale) + shift


class Embed(nn.Module):
    """Token embedding: Linear(in_chans, D) (+ identity norm, which has no parameters)."""

    def __init__(self, in_chans: int, embed_dim: int, bias: bool = True) -> None:
        super().__init__()
        self.proj = nn.Linear(in_chans, embed_dim, bias=bias)
        self.norm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, C*p*p) -> (B, N, D)
        return self.norm(self.proj(x))


class TimestepEmbedder(nn.Module):
    """Sinusoidal t features (max_period = 10!) followed by Linear, SiLU, Linear."""

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, hidden_size, bias=True),
            nn.SiLU(),
            nn.Linear(hidden_size, hidden_size, bias=True),
        )
        self.frequency_embedding_size = frequency_embedding_size

    @staticmethod
    def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10) -> torch.Tensor:
        # t: (B,) in [0, 1] -> (B, dim) = [cos(t*f), sin(t*f)], f = exp(-ln(10) * k / half)
        half = dim // 2
        freqs = torch.exp(
            -math.log(max_period) * torch.arange(0, half, dtype=torch.float32, device=t.device) / half
        )
        args = t[..., None].float() * freqs[None, ...]  # (B, half)
        embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, 2*half)
        if dim % 2:
            embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
        return embedding

    def forward(self, t: torch.Tensor) -> torch.Tensor:  # (B,) -> (B, D)
        return self.mlp(self.timestep_embedding(t, self.frequency_embedding_size))


class LabelEmbedder(nn.Module):
    """Class embedding table with K + 1 rows (row K is the null class)."""

    def __init__(self, num_classes: int, hidden_size: int) -> None:
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes, hidden_size)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:  # (B,) long -> (B, D)
        return self.embedding_table(labels)


class RMSNorm(nn.Module):
    """Official RMSNorm: fp32 ``x * rsqrt(mean(x^2) + eps)``, cast back, times weight."""

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


class FeedForward(nn.Module):
    """SwiGLU: ``w2(silu(w1 x) * w3 x)``, hidden = int(2 * hidden_dim / 3), no biases."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        hidden_dim = int(2 * hidden_dim / 3)
        self.w1 = nn.Linear(dim, hidden_dim, bias=False)
        self.w3 = nn.Linear(dim, hidden_dim, bias=False)
        self.w2 = nn.Linear(hidden_dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


def precompute_freqs_cis_2d(
    dim: int, height: int, width: int, theta: float = 10000.0, scale: float = 16.0
) -> torch.Tensor:
    """Complex 2-D RoPE table for a (height x width) token grid.

    Returns (height*width, dim/2) complex64: for token n = row*width + col, entry 2k is
    polar(1, x_pos[col] * freqs[k]) and entry 2k+1 is polar(1, y_pos[row] * freqs[k]),
    with x_pos = linspace(0, 16, width), y_pos = linspace(0, 16, height).
    """
    x_pos = torch.linspace(0, scale, width)  # (W,)
    y_pos = torch.linspace(0, scale, height)  # (H,)
    y_pos, x_pos = torch.meshgrid(y_pos, x_pos, indexing="ij")  # (H, W) each, row-major
    y_pos = y_pos.reshape(-1)  # (N,)
    x_pos = x_pos.reshape(-1)  # (N,)
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 4)[: (dim // 4)].float() / dim))  # (d/4,)
    x_freqs = torch.outer(x_pos, freqs).float()  # (N, d/4)
    y_freqs = torch.outer(y_pos, freqs).float()  # (N, d/4)
    x_cis = torch.polar(torch.ones_like(x_freqs), x_freqs)  # (N, d/4) complex
    y_cis = torch.polar(torch.ones_like(y_freqs), y_freqs)  # (N, d/4) complex
    freqs_cis = torch.cat([x_cis.unsqueeze(dim=-1), y_cis.unsqueeze(dim=-1)], dim=-1)  # (N, d/4, 2)
    return freqs_cis.reshape(height * width, -1)  # (N, d/2): interleaved x, y, x, y, ...


def apply_rotary_emb(
    xq: torch.Tensor, xk: torch.Tensor, freqs_cis: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate adjacent feature pairs of q and k as complex numbers.

    xq, xk: (B, N, G, d); freqs_cis: (N, d/2) complex. Returns (B, N, G, d) each.
    """
    freqs_cis = freqs_cis[None, :, None, :]  # (1, N, 1, d/2)
    xq_ = torch.view_as_complex(xq.float().reshape(*xq.shape[:-1], -1, 2))  # (B, N, G, d/2)
    xk_ = torch.view_as_complex(xk.float().reshape(*xk.shape[:-1], -1, 2))
    xq_out = torch.view_as_real(xq_ * freqs_cis).flatten(3)  # (B, N, G, d)
    xk_out = torch.view_as_real(xk_ * freqs_cis).flatten(3)
    return xq_out.type_as(xq), xk_out.type_as(xk)


class RAttention(nn.Module):
    """Self-attention with q/k RMSNorm over the head dim and 2-D RoPE."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        assert dim % num_heads == 0, "dim should be divisible by num_heads"
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_norm = RMSNorm(self.head_dim)
        self.k_norm = RMSNorm(self.head_dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape  # C == D here
        G, d = self.num_heads, C // self.num_heads
        qkv = self.qkv(x).reshape(B, N, 3, G, d).permute(2, 0, 1, 3, 4)  # (3, B, N, G, d)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, N, G, d) each
        q = self.q_norm(q)
        k = self.k_norm(k)
        q, k = apply_rotary_emb(q, k, freqs_cis=pos)
        q = q.view(B, -1, G, d).transpose(1, 2)  # (B, G, N, d)
        k = k.view(B, -1, G, d).transpose(1, 2).contiguous()
        v = v.view(B, -1, G, d).transpose(1, 2).contiguous()
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0)  # (B, G, N, d)
        x = x.transpose(1, 2).reshape(B, N, C)  # (B, N, D)
        return self.proj(x)


class FlattenDiTBlock(nn.Module):
    """Block shared by encoder and decoder; ``c`` is (B, 1, D) or per-token (B, N, D)."""

    def __init__(self, hidden_size: int, groups: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = RMSNorm(hidden_size, eps=1e-6)
        self.attn = RAttention(hidden_size, num_heads=groups)
        self.norm2 = RMSNorm(hidden_size, eps=1e-6)
        self.mlp = FeedForward(hidden_size, int(hidden_size * mlp_ratio))
        # No SiLU inside: the condition is already silu'd by the caller.
        self.adaLN_modulation = nn.Sequential(nn.Linear(hidden_size, 6 * hidden_size, bias=True))

    def forward(self, x: torch.Tensor, c: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        # x: (B, N, D); c: (B, 1 or N, D) -> six (B, 1 or N, D) modulation tensors
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=-1)
        x = x + gate_msa * self.attn(modulate(self.norm1(x), shift_msa, scale_msa), pos)
        x = x + gate_mlp * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x


class FinalLayer(nn.Module):
    """LayerNorm (no affine) -> modulate(shift, scale from Linear(D, 2D)(c)) -> Linear(D, C p^2)."""

    def __init__(self, hidden_size: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, out_channels, bias=True)
        self.adaLN_modulation = nn.Sequential(nn.Linear(hidden_size, 2 * hidden_size, bias=True))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)  # (B, N, D) each
        return self.linear(modulate(self.norm_final(x), shift, scale))  # (B, N, C*p*p)


class OfficialDDT(nn.Module):
    """The official DDT denoiser: condition encoder (blocks[:E]) + velocity decoder (blocks[E:])."""

    def __init__(
        self,
        in_channels: int,
        patch_size: int,
        hidden_size: int,
        num_groups: int,
        num_blocks: int,
        num_encoder_blocks: int,
        num_classes: int,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = in_channels
        self.patch_size = patch_size
        self.hidden_size = hidden_size
        self.num_groups = num_groups
        self.num_blocks = num_blocks
        self.num_encoder_blocks = num_encoder_blocks
        self.num_classes = num_classes

        self.s_embedder = Embed(in_channels * patch_size**2, hidden_size, bias=True)
        self.x_embedder = Embed(in_channels * patch_size**2, hidden_size, bias=True)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.y_embedder = LabelEmbedder(num_classes + 1, hidden_size)  # + null class
        self.final_layer = FinalLayer(hidden_size, in_channels * patch_size**2)
        self.blocks = nn.ModuleList([FlattenDiTBlock(hidden_size, num_groups) for _ in range(num_blocks)])

    def fetch_pos(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """RoPE table for a (height x width) token grid, computed on the fly: (N, d/2) complex."""
        return precompute_freqs_cis_2d(self.hidden_size // self.num_groups, height, width).to(device)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, s: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, C, H, W); t: (B,) float; y: (B,) long; s: optional (B, N, D) self-condition.

        Returns (v, s): v (B, C, H, W) velocity, s (B, N, D) the self-condition used.
        """
        B, _, H, W = x.shape
        p = self.patch_size
        pos = self.fetch_pos(H // p, W // p, x.device)  # (N, d/2) complex
        # Patchify: (B, C*p*p, N) -> (B, N, C*p*p), features ordered (c, row-in-patch, col-in-patch)
        x = F.unfold(x, kernel_size=p, stride=p).transpose(1, 2)
        t = self.t_embedder(t.view(-1)).view(B, -1, self.hidden_size)  # (B, 1, D)
        y = self.y_embedder(y).view(B, 1, self.hidden_size)  # (B, 1, D)
        c = F.silu(t + y)  # (B, 1, D)
        if s is None:
            # Condition encoder.
            s = self.s_embedder(x)  # (B, N, D)
            for i in range(self.num_encoder_blocks):
                s = self.blocks[i](s, c, pos)
            s = F.silu(t + s)  # (B, N, D): carries the timestep of this step
        # Velocity decoder, conditioned per token on s.
        x = self.x_embedder(x)  # (B, N, D)
        for i in range(self.num_encoder_blocks, self.num_blocks):
            x = self.blocks[i](x, s, pos)
        x = self.final_layer(x, s)  # (B, N, C*p*p)
        # Unpatchify: (B, C*p*p, N) -> (B, C, H, W)
        x = F.fold(x.transpose(1, 2).contiguous(), (H, W), kernel_size=p, stride=p)
        return x, s


# --------------------------------------------------------------------------------------
# Sampler (Euler, flow matching, t = 0 noise -> t = 1 data)
# --------------------------------------------------------------------------------------


def official_timesteps(num_steps: int, last_step: float | None = None, timeshift: float = 1.0) -> torch.Tensor:
    """(num_steps + 1,) float32 grid: linspace(0, 1 - last_step, N), then 1.0, then shifted."""
    if last_step is None:
        last_step = 1.0 / num_steps
    t = torch.linspace(0.0, 1.0 - last_step, num_steps, dtype=torch.float32)
    t = torch.cat([t, torch.tensor([1.0], dtype=torch.float32)], dim=0)
    return t / (t + (1 - t) * timeshift)


def _guidance(out: torch.Tensor, w: float) -> torch.Tensor:
    """CFG on an [uncond; cond] batch: (2B, ...) -> (B, ...) = u + w * (c - u)."""
    u, c = out.chunk(2, dim=0)
    return u + w * (c - u)


@torch.no_grad()
def official_sample(
    net: nn.Module,
    noise: torch.Tensor,
    labels: torch.Tensor,
    null_class: int,
    num_steps: int,
    guidance: float,
    interval_min: float,
    interval_max: float,
    timeshift: float = 1.0,
    last_step: float | None = None,
    recompute: Iterable[int] | None = None,
) -> torch.Tensor:
    """The official Euler loop with encoder sharing. noise (B, C, H, W), labels (B,) long.

    ``recompute``: the step indices at which the encoder runs (state reset to None);
    None means every step. Returns the final x (B, C, H, W), fp32.
    """
    x = noise.float()
    B = x.shape[0]
    steps = official_timesteps(num_steps, last_step, timeshift).to(x.device)  # (N+1,)
    recompute_set = set(range(num_steps)) if recompute is None else {int(i) for i in recompute}
    uncondition = torch.full_like(labels, null_class)
    cfg_y = torch.cat([uncondition, labels], dim=0)  # (2B,): [uncond; cond]
    state = None
    for i, (t_cur, t_next) in enumerate(zip(steps[:-1], steps[1:])):
        dt = t_next - t_cur  # 0-dim
        t_batch = t_cur.repeat(B)  # (B,)
        cfg_x = torch.cat([x, x], dim=0)  # (2B, C, H, W)
        cfg_t = t_batch.repeat(2)  # (2B,)
        if i in recompute_set:
            state = None
        out, state = net(cfg_x, cfg_t, cfg_y, state)  # out (2B, C, H, W), state (2B, N, D)
        if t_batch[0] > interval_min and t_batch[0] < interval_max:
            v = _guidance(out, guidance)
        else:
            v = _guidance(out, 1.0)
        x = x + v * dt
    return x


# --------------------------------------------------------------------------------------
# The official Adams-Bashforth sampler (stateful_flow_matching/adam_sampling.py: AdamLMSampler,
# coefficients from pre_integral.py). As shipped its __init__ reads self.last_step before
# anything sets it; here it is set as EulerSampler sets it (the given value, or 1/N when None or
# N == 1), and nothing else changes. The coefficients are the official closed forms, evaluated in
# `coeff_dtype` (the official code: float32 tensors; float64 is the fix for orders 3-4).
# --------------------------------------------------------------------------------------


def _preint_o1(t1, s, e):
    i1 = e - s
    return (i1 / i1,)


def _preint_o2(t1, t2, s, e):
    i1 = 0.5 / (t1 - t2) * ((e - t2) ** 2 - (s - t2) ** 2)
    i2 = 0.5 / (t2 - t1) * ((e - t1) ** 2 - (s - t1) ** 2)
    total = i1 + i2
    return (i1 / total, i2 / total)


def _preint_o3(t1, t2, t3, s, e):
    def one(a, b, c):  # integral of (t - b)(t - c) / ((a - b)(a - c)) over [s, e]
        F_ = lambda x: 1 / 3 * x**3 - 1 / 2 * (b + c) * x**2 + (b * c) * x  # noqa: E731
        return (F_(e) - F_(s)) / ((a - b) * (a - c))

    i1, i2, i3 = one(t1, t2, t3), one(t2, t1, t3), one(t3, t1, t2)
    total = i1 + i2 + i3
    return (i1 / total, i2 / total, i3 / total)


def _preint_o4(t1, t2, t3, t4, s, e):
    def one(a, b, c, d):  # integral of (t - b)(t - c)(t - d) / ((a - b)(a - c)(a - d)) over [s, e]
        F_ = lambda x: 1 / 4 * x**4 - 1 / 3 * (b + c + d) * x**3 + 1 / 2 * (c * d + b * c + b * d) * x**2 - b * c * d * x  # noqa: E731
        return (F_(e) - F_(s)) / ((a - b) * (a - c) * (a - d))

    i1, i2, i3, i4 = one(t1, t2, t3, t4), one(t2, t1, t3, t4), one(t3, t1, t2, t4), one(t4, t1, t2, t3)
    total = i1 + i2 + i3 + i4
    return (i1 / total, i2 / total, i3 / total, i4 / total)


def official_adams_coefficients(num_steps: int, order: int, timesteps: torch.Tensor, coeff_dtype=torch.float32) -> list[tuple]:
    """AdamLMSampler._reparameterize_coeffs: step i uses min(order, i + 1) of the grid points up to t_i."""
    ts = timesteps.to(coeff_dtype)
    out = []
    for i in range(num_steps):
        k = min(order, i + 1)
        pre = [ts[m] for m in range(i - k + 1, i + 1)]
        fn = {1: _preint_o1, 2: _preint_o2, 3: _preint_o3, 4: _preint_o4}[k]
        out.append(fn(*pre, ts[i], ts[i + 1]))
    return out


@torch.no_grad()
def official_adams_sample(
    net: nn.Module,
    noise: torch.Tensor,
    labels: torch.Tensor,
    null_class: int,
    num_steps: int,
    guidance: float,
    interval_min: float,
    interval_max: float,
    timeshift: float = 1.0,
    last_step: float | None = None,
    order: int = 2,
    state_refresh_rate: int = 1,
    recompute: Iterable[int] | None = None,
    coeff_dtype=torch.float32,
) -> torch.Tensor:
    """AdamLMSampler._impl_sampling. ``recompute`` (steps where the state is reset) replaces the official
    ``i % state_refresh_rate == 0`` rule when given. Returns the final x (B, C, H, W), fp32."""
    if last_step is None or num_steps == 1:
        last_step = 1.0 / num_steps
    steps = official_timesteps(num_steps, last_step, timeshift)  # (N+1,) float32
    timedeltas = steps[1:] - steps[:-1]
    coeffs = official_adams_coefficients(num_steps, order, steps, coeff_dtype)
    x = noise.float()
    B = x.shape[0]
    cfg_y = torch.cat([torch.full_like(labels, null_class), labels], dim=0)  # (2B,)
    reset = (lambda i: i % state_refresh_rate == 0) if recompute is None else (lambda i, r=set(recompute): i in r)
    state, trajectory = None, []
    t_cur = torch.zeros([B], dtype=torch.float32)
    for i in range(num_steps):
        cfg_x, cfg_t = torch.cat([x, x], dim=0), t_cur.repeat(2)
        if reset(i):
            state = None
        out, state = net(cfg_x, cfg_t, cfg_y, state)
        w = guidance if (t_cur[0] > interval_min and t_cur[0] < interval_max) else 1.0
        trajectory.append(_guidance(out, w))
        v = torch.zeros_like(trajectory[-1])
        k = len(coeffs[i])
        for j in range(k):
            v += coeffs[i][j] * trajectory[-k:][j]
        x = x + v * timedeltas[i]
        t_cur += timedeltas[i]
    return x


# --------------------------------------------------------------------------------------
# Statistical DP for the recompute set
# --------------------------------------------------------------------------------------


@torch.no_grad()
def official_similarity(states: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-step states, each (B, L, D) -> (N, N) fp32 mean cosine similarity between steps.

    Each token vector is L2-normalised; sim[i, j] = mean over the B*L tokens of <s_i, s_j>.
    """
    s = torch.stack([st.float() for st in states], dim=0)  # (N, B, L, D)
    n = s.shape[0]
    s = F.normalize(s, dim=-1).reshape(n, -1, s.shape[-1])  # (N, T=B*L, D)
    return torch.einsum("itd,jtd->ij", s, s) / s.shape[1]  # (N, N)


def official_dp(sim, K: int) -> list[int]:
    """Optimal recompute set of size K (starting at step 0) from an (N, N) similarity matrix."""
    # (1 - sim) in the input's own precision (a tensor / ndarray keeps its dtype; plain
    # nested lists of python floats are taken as float64), then nested python lists.
    if isinstance(sim, torch.Tensor):
        sim = sim.detach().cpu()
    elif isinstance(sim, (list, tuple)):
        sim = torch.tensor(sim, dtype=torch.float64)
    else:  # numpy array
        sim = torch.from_numpy(sim)
    error_map = (1 - sim).tolist()  # (N x N) nested lists
    N = len(error_map)
    assert 1 <= K <= N, f"K must be in [1, N={N}], got {K}"
    # error_map[i][j] -> sum over m = j..i of (1 - sim[m][j])  (steps j..i reuse the state of j)
    for i in range(1, N):
        for j in range(0, i):
            error_map[i][j] = error_map[i - 1][j] + error_map[i][j]

    C = [[0.0] * (N + 1) for _ in range(K + 1)]  # C[k][i]: best cost of steps 0..i-1 with k states
    P = [[-1] * (N + 1) for _ in range(K + 1)]  # P[k][i]: start of the last segment
    for i in range(1, N + 1):
        C[1][i] = error_map[i - 1][0]
        P[1][i] = 0
    for step in range(2, K + 1):
        for i in range(step, N + 1):
            min_value = 99999999.0
            min_index = -1
            for j in range(step - 1, i):
                value = C[step - 1][j] + error_map[i - 1][j]
                if value < min_value:  # strict: keep the first minimum
                    min_value = value
                    min_index = j
            C[step][i] = min_value
            P[step][i] = min_index

    timesteps = [N]
    for i in range(K, 0, -1):
        timesteps.append(P[i][timesteps[-1]])
    timesteps.reverse()  # [0, ..., N]
    return timesteps[:-1]  # K entries, starting at 0


# --------------------------------------------------------------------------------------
# Helpers for tests: random weights, official-format checkpoint and YAML config
# --------------------------------------------------------------------------------------


@torch.no_grad()
def random_official_weights(model: nn.Module, seed: int) -> nn.Module:
    """Fill EVERY parameter of ``model`` in place with deterministic, non-trivial values.

    Linear weights ~ N(0, 1/fan_in) (adaLN ones at half that scale so modulation stays
    O(0.5)), biases ~ N(0, 0.1^2), embedding rows ~ N(0, 1), norm weights ~ 1 + N(0, 0.1^2).
    No value is exactly zero (adaLN gates are therefore never zero). Returns ``model``.
    """
    gen = torch.Generator().manual_seed(int(seed))
    for name, param in model.named_parameters():
        shape = param.shape
        noise = torch.randn(shape, generator=gen, dtype=torch.float32)
        if name.endswith("norm1.weight") or name.endswith("norm2.weight") or "_norm.weight" in name:
            value = 1.0 + 0.1 * noise
        elif name.endswith("embedding_table.weight"):
            value = noise
        elif name.endswith(".bias"):
            value = 0.1 * noise
        elif param.dim() == 2:
            std = 1.0 / math.sqrt(shape[1])
            if "adaLN_modulation" in name:
                std *= 0.5
            value = std * noise
        else:
            value = noise
        value = torch.where(value == 0, torch.full_like(value, 1e-3), value)
        param.copy_(value.to(param.dtype))
    return model


def write_official_checkpoint(
    path: str | Path,
    model_state: Mapping[str, torch.Tensor],
    raw_state: Mapping[str, torch.Tensor] | None,
) -> Path:
    """Save a Lightning-style ``.ckpt``: EMA weights under ``ema_denoiser.``, raw under ``denoiser.``.

    ``raw_state`` None reuses ``model_state`` for the raw weights.
    """
    if raw_state is None:
        raw_state = model_state
    state_dict: dict[str, torch.Tensor] = {}
    for k, v in model_state.items():
        state_dict[f"ema_denoiser.{k}"] = v.detach().cpu().clone()
    for k, v in raw_state.items():
        state_dict[f"denoiser.{k}"] = v.detach().cpu().clone()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state_dict, "epoch": 3, "global_step": 10}, path)
    return path


def _y(value) -> str:
    """One YAML scalar exactly as PyYAML would write it (so 1e-05 round-trips as a float)."""
    text = yaml.safe_dump(value, default_flow_style=True)
    return text.replace("\n...\n", "").strip()


def write_official_yaml(
    path: str | Path,
    *,
    in_channels: int,
    patch_size: int,
    hidden_size: int,
    num_groups: int,
    num_blocks: int,
    num_encoder_blocks: int,
    num_classes: int,
    latent_shape: Sequence[int],
    num_steps: int,
    guidance: float,
    interval_min: float,
    interval_max: float,
    timeshift: float,
    last_step: float | None,
) -> Path:
    """Write a config laid out like the official ``configs/repa_improved_ddt_*.yaml``.

    Uses YAML anchors/aliases the way the official files do (``&hidden_dim``, ``&scheduler``).
    """
    latent = "\n".join(f"  - {_y(int(v))}" for v in latent_shape)
    text = f"""\
# lightning.pytorch==2.4.0
seed_everything: true
tags:
  exp: &exp res256_ddt_test
torch_hub_dir: null
huggingface_cache_dir: null
trainer:
  default_root_dir: universal_flow_workdirs
  accelerator: auto
  strategy: auto
  devices: auto
  num_nodes: 1
  precision: bf16-mixed
  logger:
    class_path: lightning.pytorch.loggers.WandbLogger
    init_args:
      project: universal_flow
      name: *exp
  num_sanity_val_steps: 0
  max_steps: 4000000
  val_check_interval: 4000000
  check_val_every_n_epoch: null
  log_every_n_steps: 50
  deterministic: null
  inference_mode: true
  use_distributed_sampler: false
  callbacks:
    - class_path: src.callbacks.model_checkpoint.CheckpointHook
      init_args:
        every_n_train_steps: 10000
        save_top_k: -1
        save_last: true
    - class_path: src.callbacks.save_images.SaveImagesHook
      init_args:
        save_dir: val
model:
  vae:
    class_path: src.models.vae.LatentVAE
    init_args:
      precompute: true
      weight_path: stabilityai/sd-vae-ft-ema
  denoiser:
    class_path: src.models.denoiser.decoupled_improved_dit.DDT
    init_args:
      in_channels: {_y(int(in_channels))}
      patch_size: {_y(int(patch_size))}
      num_groups: {_y(int(num_groups))}
      hidden_size: &hidden_dim {_y(int(hidden_size))}
      num_blocks: {_y(int(num_blocks))}
      num_encoder_blocks: {_y(int(num_encoder_blocks))}
      num_classes: {_y(int(num_classes))}
  conditioner:
    class_path: src.models.conditioner.LabelConditioner
    init_args:
      null_class: {_y(int(num_classes))}
  diffusion_trainer:
    class_path: src.diffusion.stateful_flow_matching.training_repa.REPATrainer
    init_args:
      lognorm_t: true
      encoder_weight_path: dinov2_vitb14
      align_layer: 8
      proj_denoiser_dim: *hidden_dim
      proj_hidden_dim: *hidden_dim
      proj_encoder_dim: 768
      scheduler: &scheduler src.diffusion.flow_matching.scheduling.LinearScheduler
  diffusion_sampler:
    class_path: src.diffusion.stateful_flow_matching.sharing_sampling.EulerSampler
    init_args:
      num_steps: {_y(int(num_steps))}
      guidance: {_y(float(guidance))}
      state_refresh_rate: 1
      guidance_interval_min: {_y(float(interval_min))}
      guidance_interval_max: {_y(float(interval_max))}
      timeshift: {_y(float(timeshift))}
      last_step: {_y(None if last_step is None else float(last_step))}
      scheduler: *scheduler
      w_scheduler: src.diffusion.flow_matching.scheduling.LinearScheduler
      guidance_fn: src.diffusion.base.guidance.simple_guidance_fn
      step_fn: src.diffusion.flow_matching.sampling.ode_step_fn
  ema_tracker:
    class_path: src.callbacks.simple_ema.SimpleEMA
    init_args:
      decay: 0.9999
  optimizer:
    class_path: torch.optim.AdamW
    init_args:
      lr: 1e-4
      weight_decay: 0.0
data:
  train_dataset: imagenet256
  train_root: data/ImageNet/train
  train_image_size: 256
  train_batch_size: 16
  eval_max_num_instances: 50000
  pred_batch_size: 64
  pred_num_workers: 4
  pred_seeds: null
  pred_selected_classes: null
  num_classes: {_y(int(num_classes))}
  latent_shape:
{latent}
"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
