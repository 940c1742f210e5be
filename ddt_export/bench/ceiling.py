"""The machine's matmul ceiling, measured in the same run as the latencies it judges.

A graph's achieved FLOP/s means little alone; as a fraction of the best square matmul the
same threads reach at that moment (fp32 with numpy and torch, bf16 with torch), it says
how much of the machine the runtime used, under whatever load the machine had.
"""

from __future__ import annotations

import time

import numpy as np

SIZE = 2048  # square: 17 GFLOP a product, ~0.1-0.5 s on 2 cores, large enough for a kernel's peak


def best_rate(matmul, size: int, repeat: int) -> float:
    """Best GFLOP/s of `repeat` products after one warm-up (the best is the ceiling, not a typical run)."""
    matmul()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        matmul()
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def measure(threads: int, size: int = SIZE, repeat: int = 5) -> dict:
    """{"fp32": GFLOP/s, "bf16": GFLOP/s, "sources": {...}}: fp32 is the better of numpy and torch."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(0)
        a32, b32 = torch.randn(size, size, generator=g), torch.randn(size, size, generator=g)
        a16, b16 = a32.bfloat16(), b32.bfloat16()
        na, nb = a32.numpy(), b32.numpy()
        out32, out16, nout = torch.empty_like(a32), torch.empty_like(a16), np.empty_like(na)
        with torch.inference_mode():
            rates = {
                # numpy's BLAS follows OMP/OPENBLAS thread variables, not torch's; it is a second opinion
                "numpy_fp32": best_rate(lambda: np.matmul(na, nb, out=nout), size, repeat),
                "torch_fp32": best_rate(lambda: torch.mm(a32, b32, out=out32), size, repeat),
                "torch_bf16": best_rate(lambda: torch.mm(a16, b16, out=out16), size, repeat),
            }
    finally:
        torch.set_num_threads(old)
    return {
        "fp32": max(rates["numpy_fp32"], rates["torch_fp32"]),
        "bf16": rates["torch_bf16"],
        "size": size,
        "threads": threads,
        "sources_gflops": {k: round(v, 1) for k, v in rates.items()},
    }
