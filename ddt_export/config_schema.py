"""The official training YAML as a typed schema: every field we use checked, with one error naming it.

Validated with pydantic before any field is used, so a wrong type or value anywhere is one
error naming the field (`model.diffusion_sampler.init_args.num_steps: ...`), never a
TypeError minutes later. Unknown extra fields are allowed: the official configs carry many
we do not need (optimiser, data loaders, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import DDTError, first_problem
from .sampler import MAX_STEPS

Count = Annotated[int, Field(strict=True, ge=1, le=1_000_000)]
Index = Annotated[int, Field(strict=True, ge=0, le=1_000_000)]
Number = Union[Annotated[int, Field(strict=True)], Annotated[float, Field(strict=True, allow_inf_nan=False)]]


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


# ----------------------------------------------------------------------------- the official training YAML


class DenoiserArgs(Open):
    in_channels: Count
    patch_size: Count
    hidden_size: Count
    num_groups: Count
    num_blocks: Count
    num_encoder_blocks: Count
    num_classes: Count


class Denoiser(Open):
    init_args: DenoiserArgs


class ConditionerArgs(Open):
    null_class: Index


class Conditioner(Open):
    init_args: ConditionerArgs


class SamplerArgs(Open):
    num_steps: Optional[Annotated[int, Field(strict=True, ge=1, le=MAX_STEPS)]] = None
    guidance: Optional[Number] = None
    guidance_interval_min: Optional[Number] = None
    guidance_interval_max: Optional[Number] = None
    timeshift: Optional[Number] = None
    last_step: Optional[Number] = None
    order: Optional[Annotated[int, Field(strict=True)]] = None  # AdamLMSampler's (checked with the other settings)


class DiffusionSampler(Open):
    class_path: Optional[str] = None  # EulerSampler or AdamLMSampler (read as a name, never imported)
    init_args: SamplerArgs = SamplerArgs()


class ModelSection(Open):
    denoiser: Denoiser
    conditioner: Conditioner
    diffusion_sampler: DiffusionSampler = DiffusionSampler()


class DataSection(Open):
    latent_shape: Annotated[list[Count], Field(min_length=3, max_length=3)]


class Ours(Open):
    name: Optional[Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")]] = None
    space: Literal["latent", "pixel"] = "latent"


class TrainingConfig(Open):
    model: ModelSection
    data: DataSection
    ddt_export: Optional[Ours] = None


# ----------------------------------------------------------------------------- checking


def check_config(doc: Any, path: Path) -> TrainingConfig:
    try:
        return TrainingConfig.model_validate(doc)
    except ValidationError as e:
        raise DDTError(f"{path}: {first_problem(e)}; fix that field (is this an official DDT training config?)") from None

