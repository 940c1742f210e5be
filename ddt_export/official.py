"""What users already have: the official training YAML configs and checkpoints.

Configs are read as data with safe YAML (anchors work; the class paths they name are
never imported). Checkpoints are Lightning `.ckpt` files (EMA weights under
`ema_denoiser.`, raw ones under `denoiser.`) or `.safetensors`; pickles load with
`weights_only=True`, and anything needing full unpickling is refused unless the user opts in.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from .errors import DDTError
from .model import DDT, DDTConfig
from .sampler import SamplerSettings

TRUST_FLAG = "--trust-checkpoint"
ARCH_KEYS = ("in_channels", "patch_size", "hidden_size", "num_groups", "num_blocks", "num_encoder_blocks", "num_classes")
SAMPLER_KEYS = {
    "num_steps": "num_steps",
    "guidance": "guidance",
    "guidance_interval_min": "interval_min",
    "guidance_interval_max": "interval_max",
    "timeshift": "timeshift",
    "last_step": "last_step",
}


@dataclass(frozen=True)
class ModelSource:
    """Everything a build needs to know about a model besides its weights."""

    name: str
    arch: DDTConfig
    null_class: int
    sampler: SamplerSettings
    space: str = "latent"  # "latent" (SD VAE latents) or "pixel" (the sample is the image)
    extra: dict = field(default_factory=dict)  # the config's `ddt_export` section, if any


def _section(doc: dict, path: str, source: Path):
    node = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise DDTError(f"{source}: missing `{path}`; is this an official DDT training config?")
        node = node[part]
    return node


def read_config(path: str | Path) -> ModelSource:
    """An official-layout training YAML -> architecture, null class, sampler defaults."""
    path = Path(path)
    if not path.is_file():
        raise DDTError(f"config {path} does not exist; pass the training YAML (e.g. configs/repa_improved_ddt_xlen22de6_256.yaml)")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DDTError(f"{path}: not safe YAML ({first}); python tags are refused, plain data only") from None
    if not isinstance(doc, dict):
        raise DDTError(f"{path}: expected a YAML mapping at the top level")
    init = _section(doc, "model.denoiser.init_args", path)
    missing = [k for k in ARCH_KEYS if k not in init]
    if missing:
        raise DDTError(f"{path}: model.denoiser.init_args lacks {', '.join(missing)}")
    shape = _section(doc, "data.latent_shape", path)
    if not (isinstance(shape, list) and len(shape) == 3 and shape[1] == shape[2]):
        raise DDTError(f"{path}: data.latent_shape must be [C, H, H] (got {shape})")
    if shape[0] != init["in_channels"]:
        raise DDTError(f"{path}: data.latent_shape has {shape[0]} channels but the denoiser takes {init['in_channels']}")
    try:
        arch = DDTConfig(**{k: int(init[k]) for k in ARCH_KEYS}, latent_size=int(shape[1]))
    except ValueError as e:
        raise DDTError(f"{path}: {e}") from None
    null_class = int(_section(doc, "model.conditioner.init_args.null_class", path))
    if not 0 <= null_class <= arch.num_classes:
        raise DDTError(f"{path}: null_class {null_class} is outside the label table [0, {arch.num_classes}]")
    sampler_args = _section(doc, "model.diffusion_sampler.init_args", path)
    sampler = SamplerSettings(**{ours: sampler_args[theirs] for theirs, ours in SAMPLER_KEYS.items() if sampler_args.get(theirs) is not None})
    ours = doc.get("ddt_export") or {}
    return ModelSource(
        name=str(ours.get("name", path.stem)),
        arch=arch,
        null_class=null_class,
        sampler=sampler,
        space=str(ours.get("space", "latent")),
        extra=ours,
    )


def _read_pickle(path: Path, trust: bool) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as e:
        if trust:
            raise DDTError(f"{path}: cannot unpickle ({str(e).splitlines()[0]})") from None
        raise DDTError(
            f"{path} needs full unpickling, which can run arbitrary code from the file; "
            f"if you trust its source, pass {TRUST_FLAG}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        raise DDTError(f"{path}: cannot read checkpoint ({str(e).splitlines()[0]}); is it truncated or corrupt?") from None


def read_weights(path: str | Path, *, ema: bool = True, trust: bool = False) -> dict[str, torch.Tensor]:
    """The denoiser's state dict from a `.ckpt`/`.pt`/`.pth` or `.safetensors` file.

    Lightning checkpoints hold `state_dict` with `ema_denoiser.*` (used by default) and
    `denoiser.*` (ema=False); a file of bare model keys is taken as is.
    """
    path = Path(path)
    if not path.is_file():
        raise DDTError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise DDTError(f"{path}: cannot read safetensors ({str(e).splitlines()[0]}); is it truncated or corrupt?") from None
    else:
        state = _read_pickle(path, trust)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise DDTError(f"{path}: expected a state dict, found {type(state).__name__}")
    prefix = "ema_denoiser." if ema else "denoiser."
    picked = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if picked:
        return picked
    if any(k.startswith(("ema_denoiser.", "denoiser.")) for k in state):
        raise DDTError(f"{path}: no `{prefix}*` weights in this checkpoint; {'use --raw-weights' if ema else 'drop --raw-weights'}")
    return dict(state)


def load_weights(model: DDT, state: dict[str, torch.Tensor], source: str) -> DDT:
    """Copy a state dict into the model; any missing, unexpected or mis-shaped key is an error."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if k in state and state[k].shape != v.shape]

    def few(items: list[str]) -> str:
        return ", ".join(items[:4]) + (f" (+{len(items) - 4} more)" if len(items) > 4 else "")

    problems = []
    if shapes:
        problems.append(f"{len(shapes)} mis-shaped (checkpoint vs config): {few(shapes)}")
    if missing:
        problems.append(f"{len(missing)} missing: {few(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected: {few(unexpected)}")
    if problems:
        raise DDTError(f"{source} does not fit the config: " + "; ".join(problems) + "; check that the config matches the checkpoint")
    model.load_state_dict({k: state[k].to(own[k].dtype) for k in own})
    return model
