"""manifest.json as typed models, one per section: what build and its extras write and every reader reads.

The manifest is the only contract between export, the runtimes and the C++ library, so its
shape is declared here once. `ManifestDoc.model_json_schema()` is committed as
`ddt_export/manifest.schema.json` (a test keeps the two equal) and the C++ tests validate real
manifests against that file, so the Python and C++ sides cannot drift apart.

Versioning: `format` is the manifest's version. Sections may gain optional fields within a
format (older builds lack them and read as their defaults); a change that old readers would
misread bumps FORMAT, and `manifest.migrate` turns every older format it can into the current
one or says to rebuild. Unknown extra fields are kept (and written back by a read-modify-write),
so a manifest from a newer ddt-export of the same format survives `calibrate`.

Every path a manifest names is relative and inside the build folder (`BuildPath`), and must be
one of the hashed `files` (`named_files`), so nothing is read that the build did not list.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Any, ClassVar, Literal, Optional, Union

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator

from .errors import DDTError
from .sampler import MAX_STEPS, SamplerSettings

FORMAT = 1

Count = Annotated[int, Field(strict=True, ge=1, le=1_000_000)]
Index = Annotated[int, Field(strict=True, ge=0, le=1_000_000)]
Number = Union[Annotated[int, Field(strict=True)], Annotated[float, Field(strict=True, allow_inf_nan=False)]]
Error = Annotated[float, Field(ge=0)]  # a measured error (relative or absolute), never negative


def _inside(path: str) -> str:
    p = PurePosixPath(path)
    if not path or p.is_absolute() or ".." in p.parts or "\\" in path or "\x00" in path:
        raise ValueError(f"path {path!r} is not inside the build folder")
    return path


BuildPath = Annotated[str, AfterValidator(_inside)]  # relative, no '..': a file of this build folder


class Section(BaseModel):
    """A manifest section: unknown fields kept; None-valued optional fields left out when written."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    keep_none: ClassVar[frozenset[str]] = frozenset()  # fields whose null means something (written even when None)

    @model_serializer(mode="wrap")
    def _omit_none(self, handler) -> dict:
        return {k: v for k, v in handler(self).items() if v is not None or k in self.keep_none}


# ----------------------------------------------------------------------------- model and sampler


class Architecture(Section):
    in_channels: Count
    patch_size: Count
    hidden_size: Count
    num_groups: Count
    num_blocks: Count
    num_encoder_blocks: Count
    num_classes: Count
    latent_size: Count

    def config(self):
        """The architecture as the DDTConfig the graphs and the model are built from."""
        from .config import DDTConfig

        return DDTConfig(**self.model_dump(include=set(DDTConfig.__dataclass_fields__)))


class ModelInfo(Section):
    architecture: Architecture
    latent_shape: Annotated[list[Count], Field(min_length=3, max_length=3)]
    num_classes: Count
    null_class: Index
    space: Literal["latent", "pixel"] = "latent"
    weights: str = "random"  # where they were read from: bundled, random, or a checkpoint path
    parameters: Optional[Annotated[int, Field(ge=0)]] = None
    # one "display name, synonym, ..." per class 0..num_classes-1 (class_names.py's rules); absent: ids only
    class_names: Optional[list[str]] = None


class Settings(Section):
    """Sampler settings: the build's defaults, and the key of each stored calibration (the same rules as the CLI's)."""

    keep_none: ClassVar[frozenset[str]] = frozenset({"last_step"})  # null: 1 / num_steps, as the official sampler

    num_steps: Annotated[int, Field(strict=True, ge=1, le=MAX_STEPS)]
    guidance: Number
    interval_min: Number
    interval_max: Number
    timeshift: Number
    last_step: Optional[Number] = None
    sampler: Literal["euler", "adams"] = "euler"  # absent in builds before the Adams sampler: Euler
    order: Annotated[int, Field(strict=True, ge=1, le=4)] = 1

    @model_validator(mode="after")
    def _valid(self) -> "Settings":
        try:
            self.settings().validate()
        except DDTError as e:
            raise ValueError(str(e)) from None
        return self

    def settings(self) -> SamplerSettings:
        return SamplerSettings(**{k: getattr(self, k) for k in SamplerSettings.__dataclass_fields__})

    @classmethod
    def of(cls, s: SamplerSettings) -> "Settings":
        return cls(**s.to_dict())


# ----------------------------------------------------------------------------- graphs and files


class Tensor(BaseModel):
    name: Annotated[str, Field(min_length=1)]
    dtype: Literal["float32", "float16", "bfloat16", "int64", "int32"]
    shape: list[Union[Annotated[int, Field(strict=True, ge=1)], Literal["batch"]]]


class GraphCheck(Section):
    """The graph against fp32 PyTorch on random inputs when it was built."""

    max_abs_error: Error
    max_rel_error: Error
    tolerance: Error


class GraphEntry(Section):
    file: BuildPath
    inputs: list[Tensor]
    outputs: list[Tensor]
    check: Optional[GraphCheck] = None
    source: Optional[str] = None  # the VAE graph: the folder its weights came from
    scaling_factor: Optional[float] = None  # the VAE graph: latents are divided by it before decoding


class FileEntry(BaseModel):
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    bytes: Annotated[int, Field(strict=True, ge=0)]


class CalibrationEntry(Section):
    """One DP similarity matrix, valid only for runs under exactly `sampler`."""

    file: BuildPath
    heatmap: Optional[BuildPath] = None
    samples: Count
    seed: Annotated[int, Field(strict=True, ge=0)]
    sampler: Settings


# ----------------------------------------------------------------------------- extras (TensorRT, LibTorch, 8-bit)


class BatchRange(BaseModel):
    min: Count
    opt: Count
    max: Count


class Engines(Section):
    """`build --backend tensorrt` / `ddt-export engines`: one engine per graph for one GPU."""

    tensorrt: str
    gpu: str
    compute_capability: Any = None
    precision: str
    strongly_typed: bool = True
    tf32: bool = False
    builder_optimization_level: Annotated[int, Field(ge=0, le=5)]
    max_batch: Count
    cfg_batch: BatchRange
    profiles: dict[str, dict[str, dict[str, list[int]]]] = {}  # graph -> input -> min/opt/max shape
    files: dict[str, BuildPath]  # graph -> its .plan
    timing_cache: Optional[str] = None  # on the machine that built them (not part of the build)
    build_seconds: dict[str, float] = {}


class LibTorchCheck(GraphCheck):
    batches: list[Count] = []


class LibTorchModule(Section):
    file: BuildPath
    inputs: list[str]
    outputs: list[str]
    check: LibTorchCheck


class LibTorch(Section):
    """`build --libtorch`: the encoder and decoder as TorchScript for the C++ runtime."""

    format: str
    precision: Literal["fp32"] = "fp32"
    device: str = "cpu"
    torch: str
    encoder: LibTorchModule
    decoder: LibTorchModule


class QuantSite(Section):
    nodes: Annotated[int, Field(ge=0)]
    error_alone: float
    max_rel_error_alone: Optional[float] = None
    is_float: bool = Field(alias="float")  # the manifest's key; stayed float (not quantised)
    scheme: Optional[Literal["static", "per_token", "float"]] = None  # builds before 0.3: static unless float
    per_token_error_alone: Optional[float] = None


class QuantGraph(Section):
    sites: dict[str, QuantSite]
    float_sites: dict[str, str]  # site -> why it stayed float
    error: float
    max_rel_error: Optional[float] = None
    quantized_nodes: Annotated[int, Field(ge=0)]  # static int8 (Q/DQ on both inputs)
    matmul_nodes: Annotated[int, Field(ge=0)]
    # builds with per-token sites (0.3 on): site -> why (int8 weights, activations per token at run time)
    per_token_sites: Optional[dict[str, str]] = None
    per_token_nodes: Optional[Annotated[int, Field(ge=0)]] = None
    errors_by_runtime: Optional[dict[str, dict[str, float]]] = None  # runtime -> {"error", "max_rel_error"} of the saved graph
    seconds: dict[str, float] = {}


class PerTokenScheme(Section):
    """quant/per_token.py: int8 weights in the graph, activations quantised per token and channel group at run time."""

    group_size: Annotated[int, Field(strict=True, ge=1)]  # OpenVINO's DYNAMIC_QUANTIZATION_GROUP_SIZE
    weights: str
    activations: dict[str, str]  # runtime -> how it runs these sites


class QuantScheme(Section):
    element_type: Literal["int8", "float8e4m3fn"] = "int8"  # ONNX's element type names
    per_token: Optional[PerTokenScheme] = None


class Smoothing(Section):
    alpha: Annotated[float, Field(ge=0, le=1)]
    linears: list[str]


class Quantization(Section):
    """`build --precision int8|fp8`: how the QDQ graphs were made and what stayed float, per graph."""

    scheme: QuantScheme
    # the quantiser's activation-range data (full sampling trajectories); older builds call it "calibration"
    ranges: dict[str, Any] = Field(default_factory=dict, validation_alias=AliasChoices("ranges", "calibration"))
    graphs: dict[str, QuantGraph]
    smoothing: Optional[Smoothing] = None
    seconds: dict[str, float] = {}


# ----------------------------------------------------------------------------- the manifest


class ManifestDoc(Section):
    """manifest.json."""

    format: Literal[1]
    name: Annotated[str, Field(min_length=1)]
    created: Optional[str] = None
    model: ModelInfo
    sampler: Settings
    precision: Literal["fp32", "fp16", "bf16", "int8", "fp8"]
    opset: Annotated[int, Field(strict=True, ge=7, le=30)]
    graphs: dict[str, GraphEntry]
    weights_file: BuildPath
    calibration: dict[str, CalibrationEntry] = {}
    quantization: Optional[Quantization] = None
    engines: Optional[Engines] = None
    libtorch: Optional[LibTorch] = None
    tools: dict[str, str] = {}
    build_seconds: Optional[float] = None
    files: dict[BuildPath, FileEntry]
    digest: Optional[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = None

    @field_validator("graphs")
    @classmethod
    def _has_both(cls, v: dict) -> dict:
        missing = [g for g in ("encoder", "decoder") if g not in v]
        if missing:
            raise ValueError(f"no {' or '.join(missing)} graph")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "ManifestDoc":
        if self.model.num_classes != self.model.architecture.num_classes:
            raise ValueError(f"model.num_classes {self.model.num_classes} differs from the architecture's "
                             f"{self.model.architecture.num_classes}")
        return self

    def named_files(self) -> dict[str, str]:
        """Every file the manifest points at, by where it points from (each must be a hashed entry of `files`)."""
        named = {"weights_file": self.weights_file}
        named |= {f"graphs.{k}.file": g.file for k, g in self.graphs.items()}
        for k, c in self.calibration.items():
            named[f"calibration.{k}.file"] = c.file
            if c.heatmap is not None:
                named[f"calibration.{k}.heatmap"] = c.heatmap
        if self.engines is not None:
            named |= {f"engines.files.{k}": f for k, f in self.engines.files.items()}
        if self.libtorch is not None:
            named |= {f"libtorch.{k}.file": getattr(self.libtorch, k).file for k in ("encoder", "decoder")}
        return named

    def dump(self) -> dict:
        """The JSON document (what is written, and what the digest covers)."""
        return self.model_dump(mode="json", by_alias=True)


def json_schema() -> dict:
    """The manifest's JSON Schema, as committed in ddt_export/manifest.schema.json."""
    schema = ManifestDoc.model_json_schema()
    schema["$id"] = "https://github.com/ddt-export/ddt-export/manifest.schema.json"
    schema["description"] = f"manifest.json of a ddt-export build folder, format {FORMAT} (generated from ddt_export/manifest_schema.py)"
    return schema



if __name__ == "__main__":  # python -m ddt_export.manifest_schema: rewrite the committed schema after changing the models
    import json
    from pathlib import Path

    out = Path(__file__).with_name("manifest.schema.json")
    out.write_text(json.dumps(json_schema(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {out}")
