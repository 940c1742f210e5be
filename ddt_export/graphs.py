"""The tensors of each graph, declared once.

Export names its ONNX inputs and outputs from these specs, the manifest records them, and
every runtime (onnxruntime, TensorRT, C++) binds buffers by the names and shapes it reads
back from the manifest. Nothing else spells a tensor name.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import DDTConfig
from .dtypes import state_dtype
from .errors import DDTError

BATCH = "batch"  # the symbolic (dynamic) axis; the CFG batch is twice the user batch
DEFAULT_OPSET = 18
OPSETS = range(17, 21)  # the dynamo exporter's clean range; TensorRT 10 parses up to 20


def check_opset(opset: int) -> int:
    if opset not in OPSETS:
        raise DDTError(f"opset {opset} is not supported; use {OPSETS.start} to {OPSETS.stop - 1} (TensorRT 10 parses up to 20)")
    return opset


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name: float32, float16, bfloat16, int64
    shape: tuple  # ints, or BATCH for the dynamic axis

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: dict) -> "TensorSpec":
        return cls(d["name"], d["dtype"], tuple(d["shape"]))

    def concrete(self, batch: int) -> tuple[int, ...]:
        return tuple(batch if dim == BATCH else dim for dim in self.shape)


@dataclass(frozen=True)
class GraphSpec:
    name: str  # also the file stem: <name>.onnx
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def file(self) -> str:
        return f"{self.name}.onnx"

    def to_dict(self) -> dict:
        return {
            "file": self.file,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }

    @classmethod
    def from_dict(cls, name: str, d: dict) -> "GraphSpec":
        return cls(name, tuple(map(TensorSpec.from_dict, d["inputs"])), tuple(map(TensorSpec.from_dict, d["outputs"])))

    def dynamic_shapes(self) -> dict:
        """torch.export's dynamic_shapes for this graph: the batch axis of every input."""
        import torch

        batch = torch.export.Dim("batch", min=1, max=4096)
        return {t.name: {i: batch for i, dim in enumerate(t.shape) if dim == BATCH} for t in self.inputs}


def encoder_spec(cfg: DDTConfig, precision: str = "fp32") -> GraphSpec:
    C, H = cfg.in_channels, cfg.latent_size
    return GraphSpec(
        "encoder",
        inputs=(
            TensorSpec("x", "float32", (BATCH, C, H, H)),
            TensorSpec("t", "float32", (BATCH,)),
            TensorSpec("y", "int64", (BATCH,)),
        ),
        outputs=(TensorSpec("s", state_dtype(precision), (BATCH, cfg.num_tokens, cfg.hidden_size)),),
    )


def decoder_spec(cfg: DDTConfig, precision: str = "fp32") -> GraphSpec:
    C, H = cfg.in_channels, cfg.latent_size
    return GraphSpec(
        "decoder",
        inputs=(
            TensorSpec("x", "float32", (BATCH, C, H, H)),
            TensorSpec("s", state_dtype(precision), (BATCH, cfg.num_tokens, cfg.hidden_size)),
        ),
        outputs=(TensorSpec("v", "float32", (BATCH, C, H, H)),),
    )
