"""The export-friendly model against the official formulation (complex RoPE, F.unfold/F.fold)."""

import pytest
import torch
import torch.nn.functional as F

from ddt_export.config import DDTConfig, preset
from ddt_export.model import DDT, apply_rope, patchify, rope_tables, unpatchify
from ddt_export.official import load_weights
from tests.conftest import ARCH
from tests.reference.official_ddt import OfficialDDT, apply_rotary_emb, precompute_freqs_cis_2d, random_official_weights


def test_patchify_matches_unfold_and_fold():
    x = torch.randn(2, 4, 8, 8)
    tokens = patchify(x, 2)
    assert torch.equal(tokens, F.unfold(x, 2, stride=2).transpose(1, 2))
    assert torch.equal(unpatchify(tokens, 2, 4, 8, 8), F.fold(tokens.transpose(1, 2), (8, 8), 2, stride=2))


def test_real_rope_equals_complex_rope():
    d, grid = 16, 4
    q, k = torch.randn(2, grid * grid, 3, d), torch.randn(2, grid * grid, 3, d)
    want_q, want_k = apply_rotary_emb(q, k, precompute_freqs_cis_2d(d, grid, grid))
    cos, sin = rope_tables(d, grid)
    torch.testing.assert_close(apply_rope(q, cos, sin), want_q, rtol=0, atol=1e-6)
    torch.testing.assert_close(apply_rope(k, cos, sin), want_k, rtol=0, atol=1e-6)


def test_rope_without_a_stack_is_bit_identical_to_the_pairwise_rotation():
    """apply_rope's x cos + swap(x) sin against the pairwise form it replaced (stack of a c - b s, a s + b c), fp32."""
    d, grid = 16, 4
    x = torch.randn(2, grid * grid, 3, d) * 10
    cos, sin = rope_tables(d, grid)
    c, s = cos[:, 0::2], -sin[:, 0::2]  # pair j's cos and sin
    assert torch.equal(cos[:, 1::2], c) and torch.equal(sin[:, 1::2], s)
    a, b = x[..., 0::2], x[..., 1::2]
    want = torch.stack([a * c[None, :, None] - b * s[None, :, None], a * s[None, :, None] + b * c[None, :, None]], -1)
    assert torch.equal(apply_rope(x, cos, sin), want.reshape(x.shape))


@pytest.mark.parametrize("latent", [8, 12])
def test_forward_matches_official_with_official_weights(latent):
    ref = random_official_weights(OfficialDDT(**ARCH), seed=3).eval()
    ours = load_weights(DDT(DDTConfig(**ARCH, latent_size=latent)), ref.state_dict(), "oracle").eval()
    x, t, y = torch.randn(3, 4, latent, latent), torch.rand(3), torch.tensor([0, 9, 10])
    with torch.no_grad():
        v_ref, s_ref = ref(x, t, y)
        v, s = ours(x, t, y)
        v_shared, _ = ours(x, t, y, s=s_ref)  # decoder alone, given the official state
    torch.testing.assert_close(s, s_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(v, v_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(v_shared, v_ref, rtol=1e-5, atol=1e-5)


def test_state_dict_keys_are_the_official_ones():
    ours = DDT(DDTConfig(**ARCH, latent_size=8))
    ref = OfficialDDT(**ARCH)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}


@pytest.mark.parametrize("name,res,params_m,blocks", [("xl", 256, 675, (22, 6)), ("l", 512, 458, (20, 4)), ("b", 256, 130, (8, 4))])
def test_presets(name, res, params_m, blocks):
    cfg = preset(name, res)
    assert cfg.latent_size == res // 8 and (cfg.num_encoder_blocks, cfg.num_decoder_blocks) == blocks
    with torch.device("meta"):
        n = sum(p.numel() for p in DDT(cfg).parameters())
    assert abs(n / 1e6 - params_m) < 0.02 * params_m  # the paper's XL/2 is 675M


def test_bad_configs_are_refused():
    with pytest.raises(KeyError, match="unknown preset"):
        preset("xxl")
    with pytest.raises(ValueError, match="multiple of 16"):
        preset("b", 250)
    with pytest.raises(ValueError, match="num_encoder_blocks"):
        DDTConfig(num_blocks=4, num_encoder_blocks=4)


def test_half_model_keeps_norms_and_rope_in_fp32_and_stays_close():
    ref = random_official_weights(OfficialDDT(**ARCH), seed=4).eval()
    ours = load_weights(DDT(DDTConfig(**ARCH, latent_size=8)), ref.state_dict(), "oracle").eval()
    x, t, y = torch.randn(2, 4, 8, 8), torch.tensor([0.001, 0.999]), torch.tensor([1, 10])
    with torch.no_grad():
        v32, _ = ours(x, t, y)
        v16, s16 = ours.to(torch.bfloat16)(x, t, y)
    assert s16.dtype == torch.bfloat16 and v16.dtype == torch.float32
    assert torch.isfinite(v16).all()
    assert (v16 - v32).abs().max() / v32.abs().max() < 5e-2
