"""Typed schemas of the files users hand us or we read back: the official training YAML and manifest.json.

Validated with pydantic before any field is used, so a wrong type or value anywhere is one
error naming the field (`model.diffusion_sampler.init_args.num_steps: ...`), never a
TypeError minutes later. Unknown extra fields are allowed: the official configs carry many
we do not need (optimiser, data loaders, ...).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import DDTError
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


class DiffusionSampler(Open):
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


# ----------------------------------------------------------------------------- manifest.json


class Tensor(BaseModel):
    name: str
    dtype: Literal["float32", "float16", "bfloat16", "int64", "int32"]
    shape: list[Union[Annotated[int, Field(strict=True, ge=1)], Literal["batch"]]]


class Graph(Open):
    file: str
    inputs: list[Tensor]
    outputs: list[Tensor]


class FileEntry(BaseModel):
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    bytes: Annotated[int, Field(strict=True, ge=0)]


class Settings(BaseModel):
    num_steps: Annotated[int, Field(strict=True, ge=1, le=MAX_STEPS)]
    guidance: Number
    interval_min: Number
    interval_max: Number
    timeshift: Number
    last_step: Optional[Number] = None


class Calibration(Open):
    file: str
    heatmap: Optional[str] = None
    samples: Count
    seed: Annotated[int, Field(strict=True, ge=0)]
    sampler: Settings


class BuiltModel(Open):
    architecture: DenoiserArgs
    latent_shape: Annotated[list[Count], Field(min_length=3, max_length=3)]
    num_classes: Count
    null_class: Index
    space: Literal["latent", "pixel"]


class ManifestData(Open):
    format: Literal[1]
    name: str
    model: BuiltModel
    sampler: Settings
    precision: Literal["fp32", "fp16", "bf16", "int8", "fp8"]
    opset: Annotated[int, Field(strict=True, ge=7, le=30)]
    graphs: dict[str, Graph]
    weights_file: str
    calibration: dict[str, Calibration] = {}
    files: dict[str, FileEntry]

    @field_validator("graphs")
    @classmethod
    def _has_both(cls, v: dict) -> dict:
        missing = [g for g in ("encoder", "decoder") if g not in v]
        if missing:
            raise ValueError(f"no {' or '.join(missing)} graph")
        return v

    @field_validator("files")
    @classmethod
    def _relative(cls, v: dict) -> dict:
        bad = [f for f in v if Path(f).is_absolute() or ".." in Path(f).parts]
        if bad:
            raise ValueError(f"file {bad[0]!r} is outside the build folder")
        return v


# ----------------------------------------------------------------------------- checking


def first_problem(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    got = err.get("input")
    shown = repr(got) if not isinstance(got, (dict, list)) or len(repr(got)) < 40 else type(got).__name__
    return f"{where}: {err['msg'].rstrip('.')} (got {shown})"


def check_config(doc: Any, path: Path) -> TrainingConfig:
    try:
        return TrainingConfig.model_validate(doc)
    except ValidationError as e:
        raise DDTError(f"{path}: {first_problem(e)}; fix that field (is this an official DDT training config?)") from None


def check_manifest(data: dict, path: Path) -> ManifestData:
    try:
        parsed = ManifestData.model_validate(data)
    except ValidationError as e:
        raise DDTError(f"{path}: {first_problem(e)}; the manifest is damaged or was edited, rebuild the folder") from None
    for where, s in [("sampler", parsed.sampler), *((f"calibration.{k}.sampler", c.sampler) for k, c in parsed.calibration.items())]:
        if any(isinstance(v, float) and not math.isfinite(v) for v in s.model_dump().values()):
            raise DDTError(f"{path}: {where} holds a non-finite number; rebuild the folder")
    return parsed
