"""The architecture's multiply-add counts against two independent counts, and the ideal arithmetic."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from ddt_export.bench.flops import block_macs, decoder_macs, encoder_macs, ideal_speedup
from ddt_export.manifest import read
from ddt_export.config import DDTConfig, preset
from ddt_export.model import DDT
from tests.conftest import ARCH

TINY = DDTConfig(**ARCH, latent_size=8)  # the architecture of the session's tiny build

CONFIGS = [
    TINY,
    DDTConfig(hidden_size=96, num_groups=6, num_blocks=4, num_encoder_blocks=1, num_classes=7, latent_size=12, in_channels=3),
]


def counted_by_torch(model: DDT, batch: int = 1) -> tuple[int, int]:
    """FLOPs / 2 that torch.utils.flop_counter sees in encode and decode (SDPA as its math kernels)."""
    cfg = model.cfg
    g = torch.Generator().manual_seed(0)
    x = torch.randn((batch, *cfg.latent_shape), generator=g)
    t, y = torch.rand(batch, generator=g), torch.zeros(batch, dtype=torch.long)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):  # the fused CPU kernel has no FLOP formula registered
        with FlopCounterMode(display=False) as fc:
            s = model.encode(x, t, y)
        enc = fc.get_total_flops()
        with FlopCounterMode(display=False) as fc:
            model.decode(x, s)
        dec = fc.get_total_flops()
    return enc // 2 // batch, dec // 2 // batch


@pytest.mark.parametrize("cfg", CONFIGS, ids=["tiny", "odd-shapes"])
def test_counts_equal_torch_flop_counter(cfg):
    enc, dec = counted_by_torch(DDT(cfg).eval(), batch=2)
    assert encoder_macs(cfg).total == enc
    assert decoder_macs(cfg).total == dec


@pytest.mark.parametrize("name", ["b", "xl"])
def test_presets_equal_torch_flop_counter_on_meta(name):
    """Full-size presets, counted without memory or time: FlopCounterMode works on meta tensors."""
    cfg = preset(name, 256)
    with torch.device("meta"):
        model = DDT(cfg).eval()
    with torch.device("meta"):
        enc, dec = counted_by_torch(model)
    assert (encoder_macs(cfg).total, decoder_macs(cfg).total) == (enc, dec)


def onnx_matmul_macs(path, batch: int = 1) -> int:
    """MACs of every MatMul and Gemm in an exported graph, from its inferred shapes (batch fixed)."""
    model = onnx.load(str(path))
    del model.graph.value_info[:]  # the exporter's symbolic shapes; re-inferred below with the batch fixed
    for vi in list(model.graph.input) + list(model.graph.output):
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_param"):
                d.dim_value = batch
    # data propagation resolves the Shape -> Reshape chains, so attention's products get concrete shapes
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    shapes = {}
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        assert all(d.HasField("dim_value") for d in dims), f"{vi.name}: shape not inferred"
        shapes[vi.name] = [d.dim_value for d in dims]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    total = 0
    for node in model.graph.node:
        if node.op_type == "MatMul":
            a, out = shapes[node.input[0]], shapes[node.output[0]]
            total += math.prod(out) * a[-1]
        elif node.op_type == "Gemm":
            trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
            a, out = shapes[node.input[0]], shapes[node.output[0]]
            total += math.prod(out) * (a[0] if trans_a else a[-1])
    return total


def test_counts_equal_the_exported_graphs(built):
    """The graphs that are timed do the matrix work the count says, no more (batch 1 and 3)."""
    arch = read(built).arch
    for batch in (1, 3):
        assert onnx_matmul_macs(built / "encoder.onnx", batch) == batch * encoder_macs(arch).total
        assert onnx_matmul_macs(built / "decoder.onnx", batch) == batch * decoder_macs(arch).total


def test_decoder_block_costs_about_one_and_a_half_encoder_blocks():
    cfg = preset("b", 256)
    ratio = block_macs(cfg, per_token_condition=True) / block_macs(cfg, per_token_condition=False)
    assert 1.4 < ratio < 1.6


def test_ideal_speedup_arithmetic():
    cfg = preset("b", 256)
    E, D = encoder_macs(cfg).total, decoder_macs(cfg).total
    # the numbers for B/2-256, 16 steps: K = 8 at ratio 0.5, K = 4 at 0.75
    assert ideal_speedup(E, D, 8, 16) == pytest.approx(1.40, abs=0.01)
    assert ideal_speedup(E, D, 4, 16) == pytest.approx(1.75, abs=0.01)
    assert ideal_speedup(E, D, 16, 16) == 1.0
    assert ideal_speedup(2.0, 1.0, 1, 2) == pytest.approx(3 / 2)  # (E + D) / (D + E K / N) = 3 / (1 + 1)
    # more sharing never makes the ideal worse
    ideals = [ideal_speedup(E, D, k, 50) for k in range(50, 0, -1)]
    assert np.all(np.diff(ideals) > 0)


@pytest.mark.parametrize("k", [0, 17])
def test_ideal_speedup_rejects_impossible_call_counts(k):
    with pytest.raises(ValueError, match="encoder calls"):
        ideal_speedup(1.0, 1.0, k, 16)
