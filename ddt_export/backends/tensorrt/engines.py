"""Encoder and decoder TensorRT engines, built in-process with polygraphy's loaders.

The ONNX graphs already carry their precision: an fp16 build's graphs compute in fp16 with
explicit fp32 islands (norms, RoPE, the residual stream and its modulation; see model.py),
so the network is parsed **strongly typed** and TensorRT keeps every dtype the graph
declares, no precision flags and no TF32. One optimisation profile per engine covers the
CFG batch (twice the user batch): min 1 (the conditional half alone, where guidance is off),
opt 2 x --max-batch, max twice the larger of
--max-batch and the 8-sample calibration run. One timing cache per TensorRT version and
GPU architecture lives in the user's cache folder and is reused (and extended) by every
build. Engines only run on the TensorRT version and compute capability they were built
with; the manifest records both and the runtime refuses others with the command to rebuild.
"""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path
from typing import Callable

from ...calibration import CALIBRATION_SAMPLES
from ...errors import DDTError
from ...files import user_cache
from ...graphs import GraphSpec
from ...manifest_schema import Engines, GraphEntry, ManifestDoc
from .env import Device, require

GRAPHS = ("encoder", "decoder")
OPT_LEVELS = range(0, 6)
DEFAULT_PROFILE_BATCH = 4  # default --max-batch: the largest user batch of the engines' profile (CFG batch 8)
OPT_LEVEL = 3  # default builder optimisation level (TensorRT's own default)


def cfg_batch_range(max_batch: int) -> dict[str, int]:
    """min/opt/max of the CFG batch ([uncond; cond], twice the user batch) an engine accepts."""
    return {"min": 1, "opt": 2 * max_batch, "max": 2 * max(max_batch, CALIBRATION_SAMPLES)}  # min 1: a conditional half alone


def cache_dir() -> Path:
    return user_cache() / "tensorrt"


def timing_cache_path(device: Device) -> Path:
    """One cache per TensorRT version and GPU architecture (a cache from another is useless to the builder)."""
    return cache_dir() / f"timing-trt{device.tensorrt}-sm{device.compute_capability.replace('.', '')}.cache"


def profile_shapes(spec: GraphSpec, batch: dict[str, int]) -> dict[str, dict[str, list[int]]]:
    """{input: {min, opt, max: shape}} for every input of a graph, the batch axis from `batch`."""
    return {t.name: {k: list(t.concrete(batch[k])) for k in ("min", "opt", "max")} for t in spec.inputs}


def engine_loader(onnx_path: str | Path, shapes: dict[str, dict[str, list[int]]], *, opt_level: int, timing_cache: str | Path):
    """polygraphy's loader chain for one engine; calling it builds and returns the serialized plan.

    Nothing runs until it is called, so the chain can be inspected where TensorRT is absent.
    """
    from polygraphy.backend.trt import CreateConfig, EngineBytesFromNetwork, NetworkFromOnnxPath, Profile

    profile = Profile()
    for name, s in shapes.items():
        profile.add(name, min=tuple(s["min"]), opt=tuple(s["opt"]), max=tuple(s["max"]))
    network = NetworkFromOnnxPath(str(onnx_path), strongly_typed=True)  # the graph's dtypes are the precision
    config = CreateConfig(
        profiles=[profile],
        tf32=False,  # fp32 islands stay fp32
        builder_optimization_level=opt_level,
        load_timing_cache=str(timing_cache),
    )
    return EngineBytesFromNetwork(network, config=config, save_timing_cache=str(timing_cache))


def quiet_polygraphy() -> None:
    from polygraphy.logger import G_LOGGER

    G_LOGGER.module_severity = G_LOGGER.WARNING


def build_engines(
    folder: Path,
    graphs: dict[str, GraphEntry],
    *,
    precision: str,
    max_batch: int,
    opt_level: int,
    progress: Callable[[str], None] = lambda msg: None,
    out: Path | None = None,
) -> Engines:
    """Build `<graph>.plan` from each `<graph>.onnx` in `folder` (into `out`, default `folder`); returns the manifest's `engines` section."""
    from polygraphy.exception import PolygraphyException

    quiet_polygraphy()
    device = Device.here()
    batch = cfg_batch_range(max_batch)
    cache = timing_cache_path(device)
    cache.parent.mkdir(parents=True, exist_ok=True)
    profiles, seconds = {}, {}
    for name in GRAPHS:
        spec = GraphSpec.from_dict(name, graphs[name].model_dump())
        profiles[name] = profile_shapes(spec, batch)
        progress(f"building the {name} TensorRT engine ({precision}, {device.name}); minutes for XL")
        started = time.perf_counter()
        try:
            plan = engine_loader(folder / spec.file, profiles[name], opt_level=opt_level, timing_cache=cache)()
        except PolygraphyException as e:
            raise DDTError(f"TensorRT could not build the {name} engine: {str(e).strip().splitlines()[-1][:300]} (rerun with --debug for TensorRT's log)") from None
        with open((out or folder) / f"{name}.plan", "wb") as f:
            f.write(plan)
        seconds[name] = round(time.perf_counter() - started, 1)
    return Engines.model_validate({
        "tensorrt": device.tensorrt,
        "gpu": device.name,
        "compute_capability": device.compute_capability,
        "precision": precision,
        "strongly_typed": True,
        "tf32": False,
        "builder_optimization_level": opt_level,
        "max_batch": max_batch,
        "cfg_batch": batch,
        "profiles": profiles,
        "files": {name: f"{name}.plan" for name in GRAPHS},
        "timing_cache": str(cache),
        "build_seconds": seconds,
    })


def check_options(max_batch: int, opt_level: int) -> None:
    if max_batch < 1:
        raise DDTError(f"--max-batch must be >= 1 (got {max_batch})")
    if opt_level not in OPT_LEVELS:
        raise DDTError(f"--opt-level must be 0 to 5 (got {opt_level}); 3 is TensorRT's default, 5 searches longest")


def engines_extra(*, precision: str, max_batch: int = DEFAULT_PROFILE_BATCH, opt_level: int = OPT_LEVEL, required: bool = False):
    """The build extra that adds engines, or None (auto, no TensorRT here).

    With `required`, a machine without TensorRT or a GPU raises the install instructions
    now, before the build writes anything.
    """
    check_options(max_batch, opt_level)
    if required:
        require("--backend tensorrt", ", or build with --backend onnx (or auto, which skips engines)")
    else:
        from .env import missing

        if missing() is not None:
            return None

    def extra(tmp: Path, doc: ManifestDoc, model) -> None:
        doc.engines = build_engines(tmp, doc.graphs, precision=precision, max_batch=max_batch, opt_level=opt_level)

    return extra


def rebuild_command(root: Path, max_batch: int = DEFAULT_PROFILE_BATCH, opt_level: int = OPT_LEVEL) -> str:
    return shlex.join(["ddt-export", "engines", str(root), "--max-batch", str(max_batch), "--opt-level", str(opt_level)])


def rebuild_engines(build_dir: str | Path, *, max_batch: int | None = None, opt_level: int | None = None,
                    progress: Callable[[str], None] = lambda msg: None):
    """(Re)build a build folder's engines from its ONNX graphs on this machine; the manifest is updated last.

    The engines are built (minutes) into a staging folder beside the build, then moved in and recorded under
    the folder's lock, only if the folder still holds the build they were built from.
    """
    import shutil
    import tempfile

    from ...manifest import read, record_file, update

    m = read(build_dir)
    old = m.doc.engines
    max_batch = max_batch if max_batch is not None else old.max_batch if old else DEFAULT_PROFILE_BATCH
    opt_level = opt_level if opt_level is not None else old.builder_optimization_level if old else OPT_LEVEL
    check_options(max_batch, opt_level)
    require("ddt-export engines")
    staging = Path(tempfile.mkdtemp(prefix=f".{m.root.name}.engines.", suffix=".partial", dir=m.root.absolute().parent))
    try:
        engines = build_engines(m.root, m.doc.graphs, precision=m.precision, max_batch=max_batch, opt_level=opt_level,
                                progress=progress, out=staging)

        def change(doc: ManifestDoc) -> None:
            for name in GRAPHS:
                os.replace(staging / f"{name}.plan", m.root / f"{name}.plan")
                record_file(m.root, doc, f"{name}.plan")
            doc.engines = engines

        updated = update(m, change)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if updated is None:
        raise DDTError(f"{m.root} was rebuilt while its engines were built; nothing was changed, run the command again")
    return updated
