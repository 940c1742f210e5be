"""Independent check of the bundled digits DDT: a reference Euler sampler and a digit classifier.

The sampler follows the official semantics (see shared/reference/ddt-reference.md, "Sampler"):
t = 0 is noise, t = 1 data; CFG batch [uncond; cond]; guidance only inside the open interval;
optional encoder sharing (the encoder runs only at the recompute steps, s is reused otherwise).
The classifier is an RBF SVM trained on the real 8x8 digits, independent of the DDT; generated
16x16 samples are mapped back to 8x8 with the exact (least-squares) inverse of the upsampling.

    python benchmarks/digits_eval.py [--dir ddt_export/bundled]
"""

from __future__ import annotations

import argparse
import json
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file
from sklearn.datasets import load_digits
from sklearn.svm import SVC

from ddt_export.config import DDTConfig
from ddt_export.model import DDT

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "src" / "ddt_export" / "bundled"


# ----------------------------------------------------------------------------- data


def upsample(x8: torch.Tensor) -> torch.Tensor:
    """(B, 1, 8, 8) -> (B, 1, 16, 16), bilinear (align_corners=False)."""
    return F.interpolate(x8, size=(16, 16), mode="bilinear", align_corners=False)


@lru_cache(maxsize=1)
def _downsample_matrix() -> torch.Tensor:
    """(64, 256) pseudo-inverse of the bilinear upsampling operator: exact on its range."""
    up = upsample(torch.eye(64).reshape(64, 1, 8, 8)).reshape(64, 256).T  # 256 64: columns = images of basis pixels
    return torch.linalg.pinv(up.double()).float()  # 64 256


def downsample(x16: torch.Tensor) -> torch.Tensor:
    """(B, 1, 16, 16) -> (B, 1, 8, 8), the least-squares inverse of `upsample`."""
    return (x16.reshape(-1, 256) @ _downsample_matrix().T).reshape(-1, 1, 8, 8)


def digits_16() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 sklearn digits as (1797, 1, 16, 16) in [-1, 1], and labels (1797,)."""
    d = load_digits()
    x8 = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0 * 2 - 1  # 1797 1 8 8
    return upsample(x8), torch.tensor(d.target, dtype=torch.long)


# ----------------------------------------------------------------------------- classifier


@lru_cache(maxsize=1)
def classifier() -> SVC:
    """RBF SVM on all real 8x8 digits scaled to [0, 1] (held-out accuracy ~0.99 on a shuffled split)."""
    d = load_digits()
    return SVC(C=10, gamma="scale").fit(d.data / 16.0, d.target)


def classify(x16: torch.Tensor) -> np.ndarray:
    """Generated (B, 1, 16, 16) in [-1, 1] -> predicted digits (B,)."""
    x8 = ((downsample(x16.clamp(-1, 1)) + 1) / 2).clamp(0, 1)  # B 1 8 8 in [0, 1]
    return classifier().predict(x8.reshape(len(x8), 64).numpy())


# ----------------------------------------------------------------------------- model + sampler


def load_bundled(directory: Path = BUNDLED, name: str = "digits") -> tuple[DDT, dict]:
    """The DDT and its YAML config from `<name>.safetensors` / `<name>.yaml`."""
    conf = yaml.safe_load((Path(directory) / f"{name}.yaml").read_text())
    a = conf["model"]["denoiser"]["init_args"]
    cfg = DDTConfig(
        **{k: a[k] for k in ("in_channels", "patch_size", "hidden_size", "num_groups", "num_blocks", "num_encoder_blocks", "num_classes")},
        latent_size=conf["data"]["latent_shape"][1],
    )
    model = DDT(cfg).eval()
    model.load_state_dict(load_file(str(Path(directory) / f"{name}.safetensors")), strict=True)
    return model, conf


def timesteps(num_steps: int, last_step: float, timeshift: float) -> torch.Tensor:
    """(num_steps + 1,) grid: linspace(0, 1 - last_step, N) then 1.0, each shifted."""
    t = torch.cat([torch.linspace(0.0, 1.0 - last_step, num_steps), torch.ones(1)])
    return t / (t + (1 - t) * timeshift)


def uniform_recompute(num_steps: int, ratio: float) -> list[int]:
    """Steps where the encoder runs for uniform sharing at `ratio` (0.75 -> every 4th step)."""
    rate = round(1 / (1 - ratio))
    return [i for i in range(num_steps) if i % rate == 0]


@torch.no_grad()
def sample(
    model: DDT,
    noise: torch.Tensor,
    y: torch.Tensor,
    num_steps: int = 40,
    guidance: float = 1.0,
    guidance_interval_min: float = 0.0,
    guidance_interval_max: float = 1.0,
    timeshift: float = 1.0,
    last_step: float = 0.04,
    recompute: list[int] | None = None,
    keep_states: bool = False,
    **_,
):
    """Euler sampling from noise (B, C, H, W) at t = 0 to data at t = 1; returns x (and s per step)."""
    B = len(noise)
    ts = timesteps(num_steps, last_step, timeshift)
    labels = torch.cat([torch.full_like(y, model.cfg.null_class), y])  # 2B: [uncond; cond]
    recompute = set(range(num_steps) if recompute is None else recompute)
    x, s, states = noise.clone(), None, []
    for i in range(num_steps):
        t, dt = ts[i], ts[i + 1] - ts[i]
        xx = torch.cat([x, x])  # 2B C H W
        if s is None or i in recompute:
            s = model.encode(xx, t.repeat(2 * B), labels)  # 2B N D
        if keep_states:
            states.append(s)
        v = model.decode(xx, s)  # 2B C H W
        vu, vc = v[:B], v[B:]
        w = guidance if guidance_interval_min < t < guidance_interval_max else 1.0
        x = x + (vu + w * (vc - vu)) * dt
    return (x, torch.stack(states)) if keep_states else x


def sampler_args(conf: dict) -> dict:
    return dict(conf["model"]["diffusion_sampler"]["init_args"])


def eval_noise(n_per_class: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed evaluation batch: noise (10 n, 1, 16, 16) and labels 0..9, n of each."""
    noise = torch.randn((10 * n_per_class, 1, 16, 16), generator=torch.Generator("cpu").manual_seed(seed))
    return noise, torch.arange(10).repeat_interleave(n_per_class)


def accuracy(model: DDT, conf: dict, recompute: list[int] | None = None, **overrides) -> float:
    """Fraction of the 200 evaluation samples the classifier reads as their class."""
    noise, y = eval_noise()
    x = sample(model, noise, y, **{**sampler_args(conf), **overrides}, recompute=recompute)
    return float((classify(x) == y.numpy()).mean())


# ----------------------------------------------------------------------------- encoder sharing


def state_similarity(model: DDT, conf: dict, n: int = 8, seed: int = 0, **overrides) -> torch.Tensor:
    """(N, N) cosine similarity of s between steps, averaged over tokens (the paper's calibration)."""
    noise = torch.randn((n, *model.cfg.latent_shape), generator=torch.Generator("cpu").manual_seed(seed))
    y = torch.randint(0, model.cfg.num_classes, (n,), generator=torch.Generator("cpu").manual_seed(seed))
    _, states = sample(model, noise, y, **{**sampler_args(conf), **overrides}, keep_states=True)  # N 2B L D
    u = F.normalize(states.flatten(1, 2), dim=-1)  # N T D
    return torch.einsum("itd,jtd->ij", u, u) / u.shape[1]


def dp_recompute(sim: torch.Tensor, k: int) -> list[int]:
    """The paper's statistical DP: k recompute steps (starting at 0) minimising sum(1 - sim)."""
    n = len(sim)
    E = torch.zeros(n, n, dtype=torch.float64)  # E[i, j]: steps j..i reuse the state of step j
    for j in range(n):
        E[j:, j] = torch.cumsum(1 - sim[j:, j].double(), 0)
    C = torch.full((k + 1, n + 1), float("inf"), dtype=torch.float64)
    P = torch.zeros((k + 1, n + 1), dtype=torch.long)
    C[1, 1:] = E[:, 0]
    for kk in range(2, k + 1):
        for i in range(kk, n + 1):
            cand = C[kk - 1, kk - 1 : i] + E[i - 1, kk - 1 : i]
            C[kk, i], P[kk, i] = cand.min(), int(cand.argmin()) + kk - 1
    steps, i = [], n
    for kk in range(k, 1, -1):
        i = int(P[kk, i])
        steps.append(i)
    return [0] + steps[::-1]


def reuse_similarity(sim: torch.Tensor, recompute: list[int]) -> float:
    """Mean similarity of the state each step uses to the one it would have computed."""
    src = [max(r for r in recompute if r <= i) for i in range(len(sim))]
    return float(torch.stack([sim[i, j] for i, j in enumerate(src)]).mean())


# ----------------------------------------------------------------------------- grid


def save_grid(model: DDT, conf: dict, path: Path, seed: int = 1, **overrides) -> None:
    """10 x 10 PNG: row d holds ten samples of digit d, each 16x16 shown at 4x."""
    from PIL import Image

    noise = torch.randn((100, 1, 16, 16), generator=torch.Generator("cpu").manual_seed(seed))
    x = sample(model, noise, torch.arange(10).repeat_interleave(10), **{**sampler_args(conf), **overrides})
    img = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[:, 0].numpy()  # 100 16 16
    pad = 2
    grid = np.full((10 * (16 + pad) + pad, 10 * (16 + pad) + pad), 255, np.uint8)
    for k, im in enumerate(img):
        r, c = divmod(k, 10)
        grid[pad + r * (16 + pad) :][:16, pad + c * (16 + pad) :][:, :16] = im
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).resize((grid.shape[1] * 4, grid.shape[0] * 4), Image.NEAREST).save(path)


def evaluate(model: DDT, conf: dict, ratio: float = 0.75) -> dict:
    """Accuracies without sharing, with uniform and DP sharing at `ratio`, and state similarities."""
    n = sampler_args(conf)["num_steps"]
    uni = uniform_recompute(n, ratio)
    sim = state_similarity(model, conf)
    dp = dp_recompute(sim, len(uni))
    return {
        "acc_no_sharing": accuracy(model, conf),
        f"acc_uniform_{ratio}": accuracy(model, conf, uni),
        f"acc_dp_{ratio}": accuracy(model, conf, dp),
        "adjacent_similarity": float(sim.diagonal(1).mean()),
        f"reuse_similarity_uniform_{ratio}": reuse_similarity(sim, uni),
        f"reuse_similarity_dp_{ratio}": reuse_similarity(sim, dp),
        "dp_steps": dp,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=BUNDLED)
    ap.add_argument("--grid", type=Path, default=ROOT / "benchmarks" / "results" / "digits_samples.png")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.time()
    model, conf = load_bundled(args.dir)
    report = {"sampler": sampler_args(conf), **evaluate(model, conf)}
    save_grid(model, conf, args.grid)
    report["grid"] = str(args.grid)
    report["seconds"] = round(time.time() - start, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
