"""`ddt-export build`: model -> build folder (two ONNX graphs, weights, manifest).

Everything is written into a hidden temporary folder beside the destination and moved
into place only when every graph has been exported and checked, so an interrupted or
failed build leaves nothing that looks usable.
"""

from __future__ import annotations

import copy
import errno
import logging
import os
import platform
import shutil
import socket
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch

from . import __version__
from .errors import DDTError, PathVanished, os_failure
from .dtypes import QUANTIZED, TOLERANCE, check_precision, torch_cast
from .export import check_graph, example_inputs, export_graph, graph_modules
from .graphs import DEFAULT_OPSET
from .files import locked
from .manifest import Manifest, is_build, read, record_file
from .manifest import write as write_manifest
from .manifest_schema import FORMAT, Architecture, GraphCheck, GraphEntry, ManifestDoc, ModelInfo, Quantization, Settings
from .model import DDT
from .official import ModelSource

WEIGHTS = "model.safetensors"
STAGING = ".partial"  # suffix of the temp folders builds are written into, beside the destination
OWNER = ".owner"  # "<host> <pid>" of the process writing a staging folder


def cast_for_export(model: DDT, precision: str) -> DDT:
    """The model in the graph's precision; norms, RoPE and t-features stay fp32 by construction."""
    dtype = torch_cast(precision)
    return model if dtype is None else copy.deepcopy(model).to(dtype)


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


def check_destination(out: Path) -> None:
    """A build may only replace a folder that is provably a ddt-export build and holds nothing else."""
    if out.exists() and not out.is_dir():
        raise DDTError(f"--out {out} is a file; give a folder for the build")
    if out.is_dir() and any(out.iterdir()) and not is_build(out):
        raise DDTError(f"--out {out} holds files that are not (only) a ddt-export build; nothing was changed. "
                       "Choose another --out, or empty that folder yourself")


def remove_leftovers(out: Path) -> None:
    """What killed builds of `out` left beside it, once their process is gone: staging folders (their owner file
    names host and pid) and the previous build a swap had moved aside (`.NAME.old-PID-*`). Live builds' are left alone."""
    for tmp in out.parent.glob(f".{out.name}.*{STAGING}"):
        try:
            host, pid = (tmp / OWNER).read_text().split()
            if host != socket.gethostname() or _alive(int(pid)):
                continue
        except (OSError, ValueError):
            continue  # not ours to judge (no owner file): leave it
        shutil.rmtree(tmp, ignore_errors=True)
    for old in out.parent.glob(f".{out.name}.old-*-*"):
        pid = old.name[len(f".{out.name}.old-"):].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)) and is_build(old):
            shutil.rmtree(old, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A temp folder next to `out`, swapped onto it on success under the folder's lock, removed on any failure."""
    check_destination(out)
    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(out)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=STAGING, dir=out.parent))
        (tmp / OWNER).write_text(f"{socket.gethostname()} {os.getpid()}\n")  # lets a later build clean up after a kill -9
        yield tmp
        (tmp / OWNER).unlink()
        umask_modes(tmp)
        with locked(out):  # readers see the old build or the new one, never a half-swapped folder
            check_destination(out)  # again: the folder may have changed while we exported
            old = None
            if out.exists():
                old = out.with_name(f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
                os.replace(out, old)
            os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)  # a provable build of ours, checked under the lock
    except Exception as e:
        failure = os_failure(e)
        where = tmp if tmp is not None else out.parent  # the folder we were writing into
        if failure is None and not where.is_dir():
            # removed while we built: whatever a library or we made of that (FileNotFoundError, a library's own error
            # type, `cannot lock`), the machine changed under us, as atomic_write's PathVanished says for one file
            raise PathVanished(errno.ENOENT, f"{os.strerror(errno.ENOENT)} ({where} was removed while building)",
                               f"writing the build {out}") from e
        if failure is not None and failure.filename is None:  # a library's write (ONNX, safetensors) names no file: say whose
            raise OSError(failure.errno, failure.strerror, f"writing the build {out}") from e
        raise
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def build(
    source: ModelSource,
    model: DDT,
    out: Path,
    *,
    precision: str = "fp32",
    opset: int = DEFAULT_OPSET,
    weights_from: str = "random",
    extras: Sequence[Callable[[Path, ManifestDoc, DDT], None]] = (),
    progress: Callable[[str], None] = lambda msg: None,
    class_names: Sequence[str] | None = None,
) -> Manifest:
    """Export, check and write a build; returns its manifest.

    Each of `extras` (the VAE graph, TensorRT engines, LibTorch modules) is called as
    `extra(tmp_dir, doc, model)` after the two graphs are exported and checked: it writes its
    files into tmp_dir and sets its section of the manifest `doc` (a ManifestDoc). Every file in
    the folder is hashed afterwards, so extras never touch `files`. `class_names` (one line per class, checked by
    class_names.check_names; None: ids only) go into the manifest's model section.
    """
    check_precision(precision)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # torchvision-op notices are noise here
    model = model.eval()
    graph_model = cast_for_export(model, precision)
    started = time.perf_counter()
    with staging(Path(out)) as tmp:
        for spec, module in graph_modules(graph_model, precision):
            progress(f"exporting {spec.name}")
            export_graph(module, spec, example_inputs(spec, graph_model, batch=2), tmp / spec.file, opset)
        quantization = None
        if precision in QUANTIZED:  # fp32 graphs in, QDQ graphs out, in place
            from .quant import quantize_graphs

            quantization = Quantization.model_validate(quantize_graphs(tmp, model, source, precision, progress=progress, opset=opset))
        graphs = check_graphs(tmp, model, graph_model, precision, progress)
        progress("saving weights")
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / WEIGHTS))
        doc = manifest_doc(source, model, precision, opset, weights_from, graphs, quantization, class_names)
        for extra in extras:
            extra(tmp, doc, model)
        for p in sorted(q for q in tmp.rglob("*") if q.is_file() and q.name != OWNER):
            record_file(tmp, doc, p.relative_to(tmp).as_posix())
        doc.build_seconds = round(time.perf_counter() - started, 2)
        write_manifest(tmp, doc)
    return read(out, verify=False)


def check_graphs(folder: Path, model: DDT, graph_model: DDT, precision: str, progress: Callable[[str], None]) -> dict[str, GraphEntry]:
    """Each exported graph against fp32 PyTorch (the reference for every precision: that is the error users get)."""
    graphs = {}
    references = {s.name: m for s, m in graph_modules(model, "fp32")}
    for spec, _ in graph_modules(graph_model, precision):
        progress(f"checking {spec.name} against PyTorch")
        inputs = example_inputs(spec, graph_model, batch=3, seed=1)
        check = check_graph(references[spec.name], spec, folder / spec.file, inputs, TOLERANCE[precision])
        if check.max_rel_error > check.tolerance:
            raise DDTError(
                f"{spec.name} graph differs from PyTorch by {check.max_rel_error:.2e} (relative), beyond {check.tolerance:.0e}; "
                "report this with `ddt-export build --debug` output"
            )
        graphs[spec.name] = GraphEntry(**spec.to_dict(), check=GraphCheck(**check.to_dict()))
    return graphs


def manifest_doc(source: ModelSource, model: DDT, precision: str, opset: int, weights_from: str,
                 graphs: dict[str, GraphEntry], quantization: Quantization | None,
                 class_names: Sequence[str] | None = None) -> ManifestDoc:
    """The new build's manifest before extras add their sections and its files are hashed."""
    arch = source.arch
    return ManifestDoc(
        format=FORMAT,
        name=source.name,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        model=ModelInfo(architecture=Architecture(**arch.to_dict()), latent_shape=list(arch.latent_shape),
                        num_classes=arch.num_classes, null_class=source.null_class, space=source.space,
                        weights=weights_from, parameters=sum(p.numel() for p in model.parameters()),
                        class_names=None if class_names is None else list(class_names)),
        sampler=Settings.of(source.sampler),
        precision=precision,
        opset=opset,
        graphs=graphs,
        weights_file=WEIGHTS,
        quantization=quantization,
        tools=tool_versions(),
        files={},
    )
