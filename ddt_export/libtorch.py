"""`ddt-export build --libtorch`: the encoder and decoder as TorchScript for the C++ runtime.

Format choice (measured on this 2-core CPU machine, torch 2.13, the 0.4M-parameter test
model): `torch.jit.trace` takes ~1 s for both graphs and its modules give outputs identical
to eager PyTorch (same ATen kernels, max difference 0.0); AOTInductor packages
(`aoti_compile_and_package`) took 85 s + 28 s to compile, differ from eager by ~3e-7
relative (generated kernels), and are compiled for the build machine's CPU ISA. TorchScript
is deprecated upstream but still ships in torch and LibTorch; the manifest records
`format` so that the runtime can add AOTInductor later without guessing.

Both modules are traced once at batch 2 and checked against eager PyTorch at batches 1
and 3 (the CFG batch is twice the user batch, so the batch axis must stay symbolic).
Always fp32: the C++ runtime's LibTorch backend runs on the CPU.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import DDTError
from .export import example_inputs
from .graphs import GraphSpec
from .manifest_schema import LibTorch, ManifestDoc
from .metrics import rel_error
from .model import DDT, DecoderGraph, EncoderGraph

FORMAT = "torchscript"
TOLERANCE = 1e-5  # max |traced - eager| / max |eager|; tracing replays the same kernels
CHECK_BATCHES = (1, 3)  # neither is the tracing batch (2): proves the batch axis generalises


def fp32(spec: GraphSpec) -> GraphSpec:
    """The graph's tensors as the LibTorch modules take them: s in fp32 whatever the build's precision."""
    cast = lambda ts: tuple(replace(t, dtype="float32") if t.dtype in ("float16", "bfloat16") else t for t in ts)  # noqa: E731
    return GraphSpec(spec.name, cast(spec.inputs), cast(spec.outputs))


def trace(module: torch.nn.Module, spec: GraphSpec, model: DDT) -> torch.jit.ScriptModule:
    inputs = example_inputs(spec, model, batch=2)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation notice of torch.jit.trace
        return torch.jit.trace(module, tuple(inputs[t.name] for t in spec.inputs), check_trace=False)


def check(path: Path, module: torch.nn.Module, spec: GraphSpec, model: DDT) -> dict:
    """Load the saved module back and compare it with eager PyTorch at batches it was not traced at."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(str(path), map_location="cpu")
    worst_abs, worst_rel = 0.0, 0.0
    for batch in CHECK_BATCHES:
        inputs = example_inputs(spec, model, batch=batch, seed=batch)
        args = tuple(inputs[t.name] for t in spec.inputs)
        with torch.no_grad():
            got, want = loaded(*args), module(*args)
        if tuple(got.shape) != tuple(want.shape):
            raise DDTError(f"the traced {spec.name} returns shape {tuple(got.shape)} at batch {batch}, eager {tuple(want.shape)}; "
                           "report this with `ddt-export build --debug` output")
        worst_abs = max(worst_abs, float((got - want).abs().max()))
        worst_rel = max(worst_rel, rel_error(got.numpy(), want.numpy()))
    if not np.isfinite(worst_rel) or worst_rel > TOLERANCE:
        raise DDTError(f"the traced {spec.name} differs from PyTorch by {worst_rel:.2e} (relative), beyond {TOLERANCE:.0e}; "
                       "report this with `ddt-export build --debug` output")
    return {"max_abs_error": worst_abs, "max_rel_error": worst_rel, "tolerance": TOLERANCE, "batches": list(CHECK_BATCHES)}


def libtorch_extra() -> Callable[[Path, ManifestDoc, DDT], None]:
    """A build extra writing encoder.ts and decoder.ts and the manifest's `libtorch` section."""

    def extra(tmp: Path, doc: ManifestDoc, model: DDT) -> None:
        model = model.eval()  # build() passes the fp32 reference model, whatever the graphs' precision
        section: dict = {"format": FORMAT, "precision": "fp32", "device": "cpu", "torch": torch.__version__}
        modules = {"encoder": EncoderGraph(model), "decoder": DecoderGraph(model)}
        for name, module in modules.items():
            # names and positional roles from the manifest's graph specs, as every runtime reads them
            spec = fp32(GraphSpec.from_dict(name, doc.graphs[name].model_dump()))
            file = f"{name}.ts"
            trace(module, spec, model).save(str(tmp / file))
            section[name] = {
                "file": file,
                "inputs": [t.name for t in spec.inputs],
                "outputs": [t.name for t in spec.outputs],
                "check": check(tmp / file, module, spec, model),
            }
        doc.libtorch = LibTorch.model_validate(section)

    return extra
