"""Fast sanity checks of the official-DDT oracle itself (no ddt_export import)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
import yaml

from tests.reference.official_ddt import (
    OfficialDDT,
    apply_rotary_emb,
    official_dp,
    official_sample,
    official_similarity,
    official_timesteps,
    precompute_freqs_cis_2d,
    random_official_weights,
    write_official_checkpoint,
    write_official_yaml,
)

TINY = dict(in_channels=4, patch_size=2, hidden_size=32, num_groups=2, num_blocks=3,
            num_encoder_blocks=2, num_classes=10)


def tiny_model(seed: int = 0) -> OfficialDDT:
    torch.manual_seed(seed)
    return random_official_weights(OfficialDDT(**TINY), seed=seed).eval()


# ---------------------------------------------------------------- patchify


def test_unfold_fold_round_trip_and_token_layout():
    B, C, H, W, p = 2, 3, 6, 8, 2
    x = torch.randn(B, C, H, W)
    tokens = F.unfold(x, p, stride=p).transpose(1, 2)  # (B, N, C*p*p)
    # Row-major over the patch grid; features ordered (c, row-in-patch, col-in-patch).
    manual = x.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5).reshape(B, -1, C * p * p)
    assert torch.equal(tokens, manual)
    back = F.fold(tokens.transpose(1, 2).contiguous(), (H, W), kernel_size=p, stride=p)
    assert torch.equal(back, x)


# ---------------------------------------------------------------- RoPE


def test_rope_table_layout():
    d, h, w = 16, 3, 5
    fc = precompute_freqs_cis_2d(d, h, w)  # (h*w, d/2)
    assert fc.shape == (h * w, d // 2) and fc.is_complex()
    freqs = 1.0 / (10000 ** (torch.arange(0, d, 4)[: d // 4].float() / d))
    xs, ys = torch.linspace(0, 16, w), torch.linspace(0, 16, h)
    for r, c in [(0, 0), (1, 3), (2, 4)]:
        n = r * w + c
        for j in range(d // 2):
            pos = xs[c] if j % 2 == 0 else ys[r]
            expected = pos * freqs[j // 2]
            got = torch.angle(fc[n, j])
            # compare on the unit circle (angles wrap)
            assert torch.allclose(torch.polar(torch.ones(()), expected), fc[n, j], atol=1e-5), (n, j, got)


def test_rope_preserves_pair_norms_and_is_identity_at_origin():
    B, N, G, d = 2, 6, 2, 8
    q, k = torch.randn(B, N, G, d), torch.randn(B, N, G, d)
    fc = precompute_freqs_cis_2d(d, 2, 3)
    q2, k2 = apply_rotary_emb(q, k, fc)
    pair_norm = lambda t: t.reshape(*t.shape[:-1], -1, 2).norm(dim=-1)  # noqa: E731
    assert torch.allclose(pair_norm(q2), pair_norm(q), atol=1e-5)
    assert torch.allclose(pair_norm(k2), pair_norm(k), atol=1e-5)
    assert torch.allclose(q2[:, 0], q[:, 0], atol=1e-6)  # token (0, 0): angle 0


# ---------------------------------------------------------------- model


def test_state_dict_keys_are_official():
    m = OfficialDDT(**TINY)
    keys = set(m.state_dict().keys())
    expected = {
        "x_embedder.proj.weight", "x_embedder.proj.bias",
        "s_embedder.proj.weight", "s_embedder.proj.bias",
        "t_embedder.mlp.0.weight", "t_embedder.mlp.0.bias",
        "t_embedder.mlp.2.weight", "t_embedder.mlp.2.bias",
        "y_embedder.embedding_table.weight",
        "final_layer.linear.weight", "final_layer.linear.bias",
        "final_layer.adaLN_modulation.0.weight", "final_layer.adaLN_modulation.0.bias",
    }
    for i in range(TINY["num_blocks"]):
        expected |= {f"blocks.{i}.{s}" for s in (
            "norm1.weight", "norm2.weight", "attn.qkv.weight", "attn.q_norm.weight",
            "attn.k_norm.weight", "attn.proj.weight", "attn.proj.bias", "mlp.w1.weight",
            "mlp.w2.weight", "mlp.w3.weight", "adaLN_modulation.0.weight", "adaLN_modulation.0.bias")}
    assert keys == expected
    D = TINY["hidden_size"]
    sd = m.state_dict()
    assert sd["y_embedder.embedding_table.weight"].shape == (TINY["num_classes"] + 1, D)
    assert sd["blocks.0.mlp.w1.weight"].shape == (int(2 * 4 * D / 3), D)
    assert sd["blocks.0.attn.q_norm.weight"].shape == (D // TINY["num_groups"],)


def test_random_weights_deterministic_and_nonzero():
    a, b = tiny_model(3), tiny_model(3)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
        assert (va != 0).all(), k
    c = tiny_model(4)
    assert not torch.equal(a.blocks[0].attn.qkv.weight, c.blocks[0].attn.qkv.weight)
    assert (a.blocks[0].norm1.weight - 1).abs().max() < 0.6


def test_forward_shapes_and_state_reuse():
    m = tiny_model()
    B, C, H, W = 2, 4, 8, 12
    x = torch.randn(B, C, H, W)
    t = torch.tensor([0.2, 0.7])
    y = torch.tensor([1, 10])  # 10 = null class
    with torch.no_grad():
        v, s = m(x, t, y)
        assert v.shape == (B, C, H, W)
        assert s.shape == (B, (H // 2) * (W // 2), TINY["hidden_size"])
        assert torch.isfinite(v).all() and v.abs().max() > 0
        v2, s2 = m(x, t, y, s)  # passing s skips the encoder and returns it unchanged
        assert s2 is s and torch.allclose(v2, v)
        # With a foreign s, t and y have no effect on v (the decoder takes neither).
        v3, _ = m(x, torch.tensor([0.9, 0.1]), torch.tensor([3, 4]), s)
        assert torch.allclose(v3, v)


# ---------------------------------------------------------------- sampler


def test_timesteps_endpoints():
    t = official_timesteps(4)
    assert t.dtype == torch.float32 and t.shape == (5,)
    assert torch.allclose(t, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    t = official_timesteps(250, last_step=0.04, timeshift=3.0)
    assert t.shape == (251,) and t[0] == 0.0 and t[-1] == 1.0
    assert torch.all(t[1:] > t[:-1])
    raw = 1.0 - 0.04
    assert math.isclose(t[-2].item(), raw / (raw + (1 - raw) * 3.0), rel_tol=1e-6)


class _ZeroNet(torch.nn.Module):
    def forward(self, x, t, y, s=None):
        return torch.zeros_like(x), torch.zeros(x.shape[0], 1, 1)


class _RecordingNet(torch.nn.Module):
    """v = (y == null ? 1 : 2) everywhere; records how often the encoder would run."""

    def __init__(self, null):
        super().__init__()
        self.null, self.encoder_runs, self.calls = null, 0, []

    def forward(self, x, t, y, s=None):
        if s is None:
            self.encoder_runs += 1
            s = t.view(-1, 1, 1).clone()
        self.calls.append((x.shape[0], t.clone(), y.clone()))
        v = torch.where(y == self.null, 1.0, 2.0).view(-1, 1, 1, 1).expand_as(x)
        return v, s


def test_sample_zero_velocity_returns_noise():
    noise = torch.randn(2, 4, 4, 4)
    out = official_sample(_ZeroNet(), noise, torch.tensor([0, 1]), 10, 5, 3.0, 0.3, 1.0)
    assert torch.equal(out, noise)


def test_sample_cfg_interval_and_recompute():
    N, null, w = 4, 10, 3.0
    net = _RecordingNet(null)
    noise = torch.zeros(1, 1, 2, 2)
    out = official_sample(net, noise, torch.tensor([5]), null, N, w, 0.3, 1.0, recompute=[0, 2])
    assert net.encoder_runs == 2
    b, t0, y0 = net.calls[0]
    assert b == 2 and y0.tolist() == [null, 5] and t0.tolist() == [0.0, 0.0]
    ts = official_timesteps(N)  # 0, .25, .5, .75, 1
    # v = u + w (c - u) = 1 + w inside (0.3, 1.0) strictly, else 2.
    expected = sum((1 + w if 0.3 < ts[i] < 1.0 else 2.0) * (ts[i + 1] - ts[i]) for i in range(N))
    assert torch.allclose(out, torch.full_like(out, float(expected)))
    net = _RecordingNet(null)
    official_sample(net, noise, torch.tensor([5]), null, N, w, 0.3, 1.0)  # recompute=None
    assert net.encoder_runs == N


# ---------------------------------------------------------------- similarity and DP


def test_similarity_properties():
    g = torch.Generator().manual_seed(0)
    states = [torch.randn(2, 3, 8, generator=g) for _ in range(5)]
    sim = official_similarity(states)
    assert sim.shape == (5, 5)
    assert torch.allclose(sim.diagonal(), torch.ones(5), atol=1e-5)
    assert torch.allclose(sim, sim.T, atol=1e-6)
    # scaling a token vector does not change the cosine similarity
    states2 = [s * 3.0 for s in states]
    assert torch.allclose(official_similarity(states2), sim, atol=1e-5)
    a, b = F.normalize(states[1], dim=-1), F.normalize(states[3], dim=-1)
    assert math.isclose(sim[1, 3].item(), (a * b).sum(-1).mean().item(), rel_tol=1e-5)


def _subset_cost(sim, subset):
    n = len(sim)
    bounds = list(subset) + [n]
    return sum(1 - sim[m][a] for a, b in zip(bounds[:-1], bounds[1:]) for m in range(a, b))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dp_matches_brute_force(seed):
    n = 7
    g = torch.Generator().manual_seed(seed)
    sim = (1 - 0.5 * torch.rand(n, n, generator=g, dtype=torch.float64)).tolist()
    for K in range(1, n + 1):
        phi = official_dp(sim, K)
        assert len(phi) == K and phi[0] == 0 and phi == sorted(set(phi))
        best = min(([0, *rest] for rest in itertools.combinations(range(1, n), K - 1)),
                   key=lambda s: _subset_cost(sim, s))
        assert math.isclose(_subset_cost(sim, phi), _subset_cost(sim, best), rel_tol=1e-12)
        assert phi == best  # random costs: the optimum is unique


def test_dp_edge_cases():
    sim = torch.ones(5, 5)  # all states identical -> every split costs 0: first minimum wins
    assert official_dp(sim, 1) == [0]
    assert official_dp(sim, 5) == [0, 1, 2, 3, 4]
    assert official_dp(sim, 3) == [0, 1, 2]


# ---------------------------------------------------------------- files


def test_checkpoint_and_yaml(tmp_path):
    m = tiny_model()
    raw = {k: v + 1 for k, v in m.state_dict().items()}
    ckpt = write_official_checkpoint(tmp_path / "last.ckpt", m.state_dict(), raw)
    blob = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert blob["epoch"] == 3 and blob["global_step"] == 10
    sd = blob["state_dict"]
    assert len(sd) == 2 * len(raw)
    for k, v in m.state_dict().items():
        assert torch.equal(sd[f"ema_denoiser.{k}"], v)
        assert torch.equal(sd[f"denoiser.{k}"], raw[k])

    cfg_path = write_official_yaml(
        tmp_path / "cfg.yaml", **TINY, latent_shape=[4, 8, 8], num_steps=6, guidance=2.5,
        interval_min=0.3, interval_max=1.0, timeshift=1.0, last_step=None)
    text = cfg_path.read_text()
    assert "&hidden_dim" in text and "*hidden_dim" in text
    cfg = yaml.safe_load(text)
    den = cfg["model"]["denoiser"]
    assert den["class_path"] == "src.models.denoiser.decoupled_improved_dit.DDT"
    assert den["init_args"] == TINY
    assert cfg["model"]["diffusion_trainer"]["init_args"]["proj_denoiser_dim"] == TINY["hidden_size"]
    assert cfg["model"]["conditioner"]["init_args"]["null_class"] == TINY["num_classes"]
    assert cfg["model"]["vae"]["class_path"] == "src.models.vae.LatentVAE"
    smp = cfg["model"]["diffusion_sampler"]
    assert smp["class_path"] == "src.diffusion.stateful_flow_matching.sharing_sampling.EulerSampler"
    ia = smp["init_args"]
    assert (ia["num_steps"], ia["guidance"], ia["state_refresh_rate"]) == (6, 2.5, 1)
    assert (ia["guidance_interval_min"], ia["guidance_interval_max"]) == (0.3, 1.0)
    assert ia["timeshift"] == 1.0 and ia["last_step"] is None
    assert cfg["data"]["latent_shape"] == [4, 8, 8] and cfg["data"]["num_classes"] == 10
    assert "trainer" in cfg
    # small floats must stay floats (YAML 1.1 would read a bare "1e-05" as a string)
    ia2 = yaml.safe_load(write_official_yaml(
        tmp_path / "cfg2.yaml", **TINY, latent_shape=[4, 8, 8], num_steps=6, guidance=2.0,
        interval_min=0.0, interval_max=1.0, timeshift=3.0, last_step=1e-5).read_text()
    )["model"]["diffusion_sampler"]["init_args"]
    assert ia2["last_step"] == 1e-5 and isinstance(ia2["last_step"], float)
