"""Export the encoder and decoder to ONNX and measure each graph against PyTorch.

The dynamo exporter gives clean standard-domain graphs (TorchScript export cannot handle
the model's norms); names and the dynamic batch axis come from `graphs.GraphSpec`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .dtypes import torch_dtype
from .errors import DDTError
from .metrics import rel_error
from .graphs import DEFAULT_OPSET, GraphSpec, check_opset, decoder_spec, encoder_spec  # noqa: F401 (DEFAULT_OPSET re-exported)
from .model import DDT, DecoderGraph, EncoderGraph



@dataclass(frozen=True)
class GraphCheck:
    max_abs_error: float
    max_rel_error: float  # max |onnx - torch| / max |torch|
    tolerance: float

    def to_dict(self) -> dict:
        return {"max_abs_error": self.max_abs_error, "max_rel_error": self.max_rel_error, "tolerance": self.tolerance}


def example_inputs(spec: GraphSpec, model: DDT, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random inputs for a graph: latents ~ N(0,1), t in [0, 1], labels incl. the null class, s from the encoder."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for t in spec.inputs:
        shape = t.concrete(batch)
        if t.name == "t":
            out[t.name] = torch.rand(shape, generator=g)
        elif t.name == "y":
            out[t.name] = torch.randint(0, model.cfg.num_classes + 1, shape, generator=g)
        elif t.name == "s":
            with torch.no_grad():
                x = torch.randn((batch, *model.cfg.latent_shape), generator=g)
                s = model.encode(x, torch.rand(batch, generator=g), torch.randint(0, model.cfg.num_classes + 1, (batch,), generator=g))
            out[t.name] = s.to(torch_dtype(t.dtype))
        else:
            out[t.name] = torch.randn(shape, generator=g).to(torch_dtype(t.dtype))
    return out


def graph_modules(model: DDT, precision: str) -> list[tuple[GraphSpec, torch.nn.Module]]:
    return [(encoder_spec(model.cfg, precision), EncoderGraph(model)), (decoder_spec(model.cfg, precision), DecoderGraph(model))]


def export_graph(module: torch.nn.Module, spec: GraphSpec, inputs: dict[str, torch.Tensor], path: Path, opset: int) -> None:
    """Write one graph; weights go to `<file>.data` only when the graph passes protobuf's 2 GB."""
    check_opset(opset)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            tuple(inputs[t.name] for t in spec.inputs),
            input_names=[t.name for t in spec.inputs],
            output_names=[t.name for t in spec.outputs],
            dynamic_shapes=spec.dynamic_shapes(),
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
    program.save(str(path))


def check_graph(module: torch.nn.Module, spec: GraphSpec, path: Path, inputs: dict[str, torch.Tensor], tolerance: float) -> GraphCheck:
    """Run the saved graph in onnxruntime and compare its output with PyTorch's."""
    from .precision.half import cpu_session

    session = cpu_session(path)  # fp16/bf16 emulated as GPU kernels store them (see precision.py); half inputs are fp32
    feeds = {t.name: inputs[t.name].float().numpy() if t.dtype in ("bfloat16", "float16") else inputs[t.name].numpy() for t in spec.inputs}
    (got,) = session.run([spec.outputs[0].name], feeds)
    with torch.no_grad():
        want = module(*(inputs[t.name] for t in spec.inputs)).float().numpy()
    got = np.asarray(got, dtype=np.float32)
    if not np.isfinite(got).all():
        raise DDTError(f"{spec.name} graph produced inf/nan on random inputs; try --precision fp32")
    return GraphCheck(float(np.abs(got - want).max()), rel_error(got, want), tolerance)
