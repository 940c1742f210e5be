"""`ddt-export build`: model -> build folder (two ONNX graphs, weights, manifest).

Everything is written into a hidden temporary folder beside the destination and moved
into place only when every graph has been exported and checked, so an interrupted or
failed build leaves nothing that looks usable.
"""

from __future__ import annotations

import copy
import logging
import os
import platform
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch

from . import __version__
from .errors import DDTError
from .export import DEFAULT_OPSET, TOLERANCE, check_graph, example_inputs, export_graph, graph_modules
from .manifest import FORMAT, NAME, Manifest, file_entry, write_json_atomic
from .model import DDT
from .official import ModelSource

PRECISIONS = ("fp32", "fp16", "bf16")
WEIGHTS = "model.safetensors"


def cast_for_export(model: DDT, precision: str) -> DDT:
    """The model in the graph's precision; norms, RoPE and t-features stay fp32 by construction."""
    if precision == "fp32":
        return model
    return copy.deepcopy(model).to({"fp16": torch.float16, "bf16": torch.bfloat16}[precision])


def tool_versions() -> dict:
    import onnx
    import onnxruntime

    return {
        "ddt_export": __version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }


def umask_modes(root: Path) -> None:
    """Give a finished build the modes a plain mkdir/open would have (mkdtemp and safetensors make them
    owner-only), so a build made by one user can be served by another."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [root, *root.rglob("*")]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


@contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A temp folder next to `out`, renamed onto it on success, removed on any failure."""
    if out.exists() and not (out / NAME).is_file() and any(out.iterdir()):
        raise DDTError(f"{out} exists and is not a ddt-export build; choose another --out or empty it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        yield tmp
        umask_modes(tmp)
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def build(
    source: ModelSource,
    model: DDT,
    out: Path,
    *,
    precision: str = "fp32",
    opset: int = DEFAULT_OPSET,
    weights_from: str = "random",
    extras: Sequence[Callable[[Path, dict, DDT], None]] = (),
    progress: Callable[[str], None] = lambda msg: None,
) -> Manifest:
    """Export, check and write a build; returns its manifest.

    Each of `extras` (the VAE graph, TensorRT engines, LibTorch modules) is called as
    `extra(tmp_dir, manifest_data, model)` after the two graphs are exported and checked: it
    writes its files into tmp_dir and records them in manifest_data. Every file in the
    folder is hashed afterwards, so extras never touch `files`.
    """
    if precision not in PRECISIONS:
        raise DDTError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # torchvision-op notices are noise here
    model = model.eval()
    graph_model = cast_for_export(model, precision)
    started = time.perf_counter()
    with staging(Path(out)) as tmp:
        graphs = {}
        for spec, module in graph_modules(graph_model, precision):
            progress(f"exporting {spec.name}")
            export_graph(module, spec, example_inputs(spec, graph_model, batch=2), tmp / spec.file, opset)
            progress(f"checking {spec.name} against PyTorch")
            # fp32 PyTorch is the reference for every precision: that is the error users get
            ref_module = dict((s.name, m) for s, m in graph_modules(model, "fp32"))[spec.name]
            inputs = example_inputs(spec, graph_model, batch=3, seed=1)
            check = check_graph(ref_module, spec, tmp / spec.file, inputs, TOLERANCE[precision])
            if check.max_rel_error > check.tolerance:
                raise DDTError(
                    f"{spec.name} graph differs from PyTorch by {check.max_rel_error:.2e} (relative), beyond {check.tolerance:.0e}; "
                    "report this with `ddt-export build --debug` output"
                )
            graphs[spec.name] = {**spec.to_dict(), "check": check.to_dict()}
        progress("saving weights")
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / WEIGHTS))
        data = {
            "format": FORMAT,
            "name": source.name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "model": {
                "architecture": source.arch.to_dict(),
                "latent_shape": list(source.arch.latent_shape),
                "num_classes": source.arch.num_classes,
                "null_class": source.null_class,
                "space": source.space,
                "weights": weights_from,
                "parameters": sum(p.numel() for p in model.parameters()),
            },
            "sampler": source.sampler.to_dict(),
            "precision": precision,
            "opset": opset,
            "graphs": graphs,
            "weights_file": WEIGHTS,
            "calibration": {},
            "tools": tool_versions(),
            "build_seconds": None,
            "files": {},
        }
        for extra in extras:
            extra(tmp, data, model)
        for p in sorted(q for q in tmp.rglob("*") if q.is_file()):
            data["files"][p.relative_to(tmp).as_posix()] = file_entry(p)
        data["build_seconds"] = round(time.perf_counter() - started, 2)
        write_json_atomic(tmp / NAME, data)
    from .manifest import read

    return read(out, verify=False)
