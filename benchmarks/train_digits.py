"""Train the small DDT bundled with the package: class-conditional 16x16 digits in pixel space.

Data: scikit-learn's `load_digits` (1,797 real 8x8 images, ships offline), bilinearly upsampled
to 16x16 and scaled to [-1, 1]. Objective: flow matching with the official convention (t = 0
noise, t = 1 data): x_t = t x1 + (1 - t) x0, target v = x1 - x0, t = sigmoid(randn) (lognorm),
labels dropped to the null class for classifier-free guidance. Optional REPA-style term: the
mean-pooled features of one encoder block, through a small MLP head, are pulled (cosine) toward
the hidden layer of an MLP classifier trained on the real digits. AdamW; the EMA is saved.

Writes <out-dir>/digits.safetensors (EMA weights, keys of `DDT.state_dict()`, float32) and
<out-dir>/digits.yaml (the official training-config layout plus a `ddt_export` section).

    python benchmarks/train_digits.py            # ~13 min on 2 idle CPU cores
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import save_file
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier
from torch import nn

from ddt_export.config import DDTConfig
from ddt_export.model import DDT

sys.path.insert(0, str(Path(__file__).resolve().parent))
from digits_eval import BUNDLED, digits_16  # noqa: E402  (the eval's exact preprocessing)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", type=Path, default=BUNDLED)
    ap.add_argument("--steps", type=int, default=1500, help="optimizer steps (the LR schedule's length)")
    ap.add_argument("--minutes", type=float, default=None, help="optional wall-clock cap: stop early if reached")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (~1.7x slower steps)")
    # model
    ap.add_argument("--hidden-size", type=int, default=128)
    ap.add_argument("--num-groups", type=int, default=4)
    ap.add_argument("--num-blocks", type=int, default=6)
    ap.add_argument("--num-encoder-blocks", type=int, default=4)
    # optimisation
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--class-dropout", type=float, default=0.1)
    ap.add_argument("--repa-weight", type=float, default=0.5, help="0 disables the alignment term (see repa_ablation.sh)")
    ap.add_argument("--repa-block", type=int, default=1, help="encoder block whose output is aligned")
    # sampler defaults written to the YAML
    ap.add_argument("--num-steps", type=int, default=40)
    ap.add_argument("--guidance", type=float, default=2.0)
    ap.add_argument("--guidance-interval-min", type=float, default=0.0)
    ap.add_argument("--guidance-interval-max", type=float, default=1.0)
    ap.add_argument("--timeshift", type=float, default=1.0)
    ap.add_argument("--last-step", type=float, default=0.04)
    return ap.parse_args()


def init_training(model: DDT) -> None:
    """DiT-style init: xavier linears, N(0, 0.02) embeddings, adaLN and output zeroed (adaLN-Zero)."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    nn.init.normal_(model.y_embedder.embedding_table.weight, std=0.02)
    for lin in (model.t_embedder.mlp[0], model.t_embedder.mlp[2]):
        nn.init.normal_(lin.weight, std=0.02)
    for block in model.blocks:
        nn.init.zeros_(block.adaLN_modulation[0].weight)
        nn.init.zeros_(block.adaLN_modulation[0].bias)
    for lin in (model.final_layer.adaLN_modulation[0], model.final_layer.linear):
        nn.init.zeros_(lin.weight)
        nn.init.zeros_(lin.bias)


def repa_targets(seed: int) -> torch.Tensor:
    """(1797, 128) hidden-layer activations of an MLP classifier trained on the real 8x8 digits."""
    d = load_digits()
    mlp = MLPClassifier((128,), alpha=1e-3, max_iter=1000, random_state=seed).fit(d.data / 16.0, d.target)
    h = np.maximum(d.data / 16.0 @ mlp.coefs_[0] + mlp.intercepts_[0], 0)
    return torch.tensor(h, dtype=torch.float32)


class Trainer(nn.Module):
    """DDT + REPA head; forward gives the two losses of one batch (compiled as one graph)."""

    def __init__(self, model: DDT, target_dim: int, repa_block: int):
        super().__init__()
        self.model = model
        D = model.cfg.hidden_size
        self.head = nn.Sequential(nn.Linear(D, 256), nn.SiLU(), nn.Linear(256, 256), nn.SiLU(), nn.Linear(256, target_dim))
        self.feats: list[torch.Tensor] = []
        model.blocks[repa_block].register_forward_hook(lambda m, i, out: self.feats.append(out))

    def forward(self, x1, x0, t, y, target):
        tt = t[:, None, None, None]
        xt = tt * x1 + (1 - tt) * x0  # B 1 16 16
        self.feats.clear()
        v, _ = self.model(xt, t, y)
        fm = F.mse_loss(v, x1 - x0)
        z = self.head(self.feats[0].mean(1))  # B N D -> B D -> B target_dim
        repa = 1 - F.cosine_similarity(z, target, dim=-1).mean()
        return fm, repa


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)

    cfg = DDTConfig(
        in_channels=1, patch_size=2, hidden_size=args.hidden_size, num_groups=args.num_groups,
        num_blocks=args.num_blocks, num_encoder_blocks=args.num_encoder_blocks, num_classes=10, latent_size=16,
    )
    model = DDT(cfg)
    init_training(model)
    ema = copy.deepcopy(model).requires_grad_(False)
    data, labels = digits_16()  # 1797 1 16 16 in [-1, 1], 1797
    targets = repa_targets(args.seed)  # 1797 128
    trainer = Trainer(model, targets.shape[1], args.repa_block)
    step_fn = trainer if args.no_compile else torch.compile(trainer)
    opt = torch.optim.AdamW(trainer.parameters(), lr=args.lr, weight_decay=0.0)
    # Linear warmup, then cosine decay to 10% of the peak.
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / args.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps))))
    )
    n_params = sum(p.numel() for p in model.parameters())
    print(f"DDT {cfg}\n{n_params:,} parameters; {len(data)} images; {args.steps} steps of {args.batch_size}", flush=True)

    start, fm_avg, repa_avg, step = time.time(), 0.0, 0.0, 0
    while step < args.steps and (args.minutes is None or time.time() - start < 60 * args.minutes):
        idx = torch.randint(0, len(data), (args.batch_size,), generator=g)
        x1, y = data[idx], labels[idx].clone()
        x0 = torch.randn(x1.shape, generator=g)
        t = torch.sigmoid(torch.randn(args.batch_size, generator=g))  # lognorm(0, 1)
        y[torch.rand(args.batch_size, generator=g) < args.class_dropout] = cfg.null_class
        fm, repa = step_fn(x1, x0, t, y, targets[idx])
        loss = fm + args.repa_weight * repa
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainer.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        decay = min(args.ema, (1 + step) / (10 + step))  # short warmup so early EMA is not the init
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), model.parameters()):
                pe.lerp_(p, 1 - decay)
        a = 1.0 if step == 1 else 0.02  # running means of the two losses
        fm_avg += (fm.item() - fm_avg) * a
        repa_avg += (repa.item() - repa_avg) * a
        if step % 100 == 0 or step == 1:
            el = time.time() - start
            print(f"step {step:5d}  fm {fm_avg:.4f}  repa {repa_avg:.4f}  lr {sched.get_last_lr()[0]:.2e}  {el:6.0f}s", flush=True)
    seconds = time.time() - start
    print(f"done: {step} steps in {seconds:.0f}s", flush=True)

    args.out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().contiguous() for k, v in ema.state_dict().items()}
    save_file(state, str(args.out_dir / "digits.safetensors"))
    conf = {
        "model": {
            "denoiser": {
                "class_path": "src.models.denoiser.decoupled_improved_dit.DDT",
                "init_args": {
                    "in_channels": cfg.in_channels, "patch_size": cfg.patch_size, "num_groups": cfg.num_groups,
                    "hidden_size": cfg.hidden_size, "num_blocks": cfg.num_blocks,
                    "num_encoder_blocks": cfg.num_encoder_blocks, "num_classes": cfg.num_classes,
                },
            },
            "conditioner": {"class_path": "src.models.conditioner.LabelConditioner", "init_args": {"null_class": cfg.null_class}},
            "diffusion_sampler": {
                "class_path": "src.diffusion.stateful_flow_matching.sharing_sampling.EulerSampler",
                "init_args": {
                    "num_steps": args.num_steps, "guidance": args.guidance,
                    "guidance_interval_min": args.guidance_interval_min, "guidance_interval_max": args.guidance_interval_max,
                    "timeshift": args.timeshift, "last_step": args.last_step, "state_refresh_rate": 1,
                },
            },
        },
        "data": {"latent_shape": list(cfg.latent_shape)},
        "ddt_export": {
            "name": "digits",
            # words, not "0".."9": those are ids on a command line (ddt_export/class_names.py)
            "class_names": ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
            "space": "pixel",
            "pixel_range": [-1, 1],
            "description": (
                "Small class-conditional DDT trained on scikit-learn's load_digits (1,797 real 8x8 digits, "
                "bilinearly upsampled to 16x16). Pixel space, 1 channel; labels 0-9 are the digits, 10 is null."
            ),
            "training": {
                "data": "sklearn.datasets.load_digits, all 1797 images, bilinear 8x8->16x16, scaled to [-1, 1]",
                "objective": "flow matching, x_t = t*x1 + (1-t)*x0 (t=0 noise), target v = x1 - x0, MSE",
                "timesteps": "t = sigmoid(randn) (lognorm(0, 1))",
                "class_dropout": args.class_dropout,
                "repa": {"weight": args.repa_weight, "block": args.repa_block,
                         "target": "hidden layer (128) of an sklearn MLPClassifier on the real 8x8 digits",
                         "loss": "1 - cosine(MLP head(mean over tokens of block output), target)"},
                "optimizer": f"AdamW lr {args.lr:g}, weight_decay 0, warmup {args.warmup}, cosine to 10%, grad clip 1.0",
                "batch_size": args.batch_size,
                "steps": step,
                "seconds": round(seconds, 1),
                "ema_decay": args.ema,
                "seed": args.seed,
                "final_fm_loss": round(fm_avg, 5),
                "hardware": f"CPU, {args.threads} threads, torch {torch.__version__}",
                "parameters": n_params,
                "script": "benchmarks/train_digits.py",
            },
        },
    }
    (args.out_dir / "digits.yaml").write_text(yaml.safe_dump(conf, sort_keys=False))
    print(f"wrote {args.out_dir}/digits.safetensors and digits.yaml", flush=True)


if __name__ == "__main__":
    main()
