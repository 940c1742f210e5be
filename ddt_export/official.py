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
from .config import DDTConfig
from .model import DDT
from .sampler import SamplerSettings
from .solvers import ADAMS_DEFAULT_ORDER

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


def _input_file(path: Path, what: str, example: str) -> Path:
    if path.is_dir():
        raise DDTError(f"{what} {path} is a folder; give the file itself, e.g. {example}")
    if not path.exists():
        raise DDTError(f"{what} {path} does not exist; give the path of {example}")
    if not path.is_file():
        raise DDTError(f"{what} {path} is not a regular file (a pipe, device or socket); give the path of {example}")
    if path.stat().st_size == 0:
        raise DDTError(f"{what} {path} is empty; download or copy it again")
    return path


SAMPLER_CLASSES = {"EulerSampler": "euler", "AdamLMSampler": "adams"}  # the official classes, by their last name


def sampler_defaults(section, path: Path) -> SamplerSettings:
    """`model.diffusion_sampler` -> the build's default sampler: Euler, or Adams with the config's order (default 2)."""
    cls = (section.class_path or "EulerSampler").rsplit(".", 1)[-1]
    if cls not in SAMPLER_CLASSES:
        raise DDTError(f"{path}: model.diffusion_sampler.class_path names {cls}; ddt-export runs "
                       f"{' and '.join(SAMPLER_CLASSES)}: set one of them in the config")
    args = section.init_args
    fields = {ours: getattr(args, theirs) for theirs, ours in SAMPLER_KEYS.items() if getattr(args, theirs) is not None}
    fields["sampler"] = SAMPLER_CLASSES[cls]
    fields["order"] = (args.order if args.order is not None else ADAMS_DEFAULT_ORDER) if cls == "AdamLMSampler" else 1
    sampler = SamplerSettings(**fields)
    try:
        sampler.validate()
    except DDTError as e:
        raise DDTError(f"{path}: model.diffusion_sampler: {e}") from None
    return sampler


def read_config(path: str | Path) -> ModelSource:
    """An official-layout training YAML -> architecture, null class, sampler defaults (validated by schema.py)."""
    from .config_schema import check_config

    path = _input_file(Path(path), "config", "configs/repa_improved_ddt_xlen22de6_256.yaml")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise DDTError(f"{path} is not a text file; give the training YAML (e.g. configs/repa_improved_ddt_xlen22de6_256.yaml)") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.constructor.ConstructorError as e:
        raise DDTError(f"{path}: not safe YAML ({str(e.problem or e).splitlines()[0]}); python tags are refused, plain YAML data only") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise DDTError(f"{path}: not valid YAML{where} ({getattr(e, 'problem', None) or type(e).__name__}); is the file complete?") from None
    except RecursionError:  # PyYAML composes nested collections recursively: a few hundred '[' exhaust the stack
        raise DDTError(f"{path}: nested too deeply to be a training config; give the training YAML") from None
    if not isinstance(doc, dict):
        raise DDTError(f"{path}: expected a YAML mapping at the top level (an official DDT training config)")
    cfg = check_config(doc, path)
    init, shape = cfg.model.denoiser.init_args, cfg.data.latent_shape
    if shape[1] != shape[2]:
        raise DDTError(f"{path}: data.latent_shape must be [C, H, H] with a square latent (got {shape})")
    if shape[0] != init.in_channels:
        raise DDTError(f"{path}: data.latent_shape has {shape[0]} channels but the denoiser takes {init.in_channels}")
    try:
        arch = DDTConfig(**{k: getattr(init, k) for k in ARCH_KEYS}, latent_size=shape[1])
    except ValueError as e:
        raise DDTError(f"{path}: model.denoiser.init_args: {e}") from None
    null_class = cfg.model.conditioner.init_args.null_class
    if not 0 <= null_class <= arch.num_classes:
        raise DDTError(f"{path}: model.conditioner.init_args.null_class {null_class} is outside the label table [0, {arch.num_classes}]")
    sampler = sampler_defaults(cfg.model.diffusion_sampler, path)
    ours = doc.get("ddt_export") or {}
    return ModelSource(
        name=(cfg.ddt_export.name if cfg.ddt_export and cfg.ddt_export.name else path.stem),
        arch=arch,
        null_class=null_class,
        sampler=sampler,
        space=cfg.ddt_export.space if cfg.ddt_export else "latent",
        extra=ours,
    )


def _read_pickle(path: Path, trust: bool) -> dict:
    with open(path, "rb") as f:
        head = f.read(2)
    if head[:2] != b"PK" and head[:1] != b"\x80":  # torch.save writes a zip; legacy files start with pickle's PROTO
        raise DDTError(f"{path} is not a PyTorch checkpoint (.ckpt/.pt) or a .safetensors file; is it truncated, or another format?")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as e:
        if trust:
            raise DDTError(f"{path}: cannot unpickle ({str(e).splitlines()[0]})") from None
        if "global" not in str(e).lower():  # weights_only refuses named globals; anything else is damage, not danger
            raise DDTError(f"{path}: cannot read checkpoint ({_reason(e)}); is it truncated or corrupt?") from None
        raise DDTError(
            f"{path} needs full unpickling, which can run arbitrary code from the file; "
            f"if you trust its source, pass {TRUST_FLAG}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, IndexError, KeyError) as e:
        raise DDTError(f"{path}: cannot read checkpoint ({_reason(e)}); is it truncated or corrupt?") from None


def _reason(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:160] if text else type(e).__name__


def read_weights(path: str | Path, *, ema: bool = True, trust: bool = False) -> dict[str, torch.Tensor]:
    """The denoiser's state dict from a `.ckpt`/`.pt`/`.pth` or `.safetensors` file.

    Lightning checkpoints hold `state_dict` with `ema_denoiser.*` (used by default) and
    `denoiser.*` (ema=False); a file of bare model keys is taken as is.
    """
    path = _input_file(Path(path), "checkpoint", "the .ckpt or .safetensors file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise DDTError(f"{path}: cannot read safetensors ({_reason(e)}); is it truncated or corrupt?") from None
    else:
        state = _read_pickle(path, trust)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for k, v in state.items() if isinstance(k, str) and k.startswith(("ema_denoiser.", "denoiser."))):
        raise DDTError(f"{path}: expected a state dict of tensors, found {type(state).__name__}; is this a DDT checkpoint?")
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
