"""Run in a subprocess by bindings.run_scenario: `python -m tests.backends.tensorrt.scenarios BINDINGS SCENARIO ARGS_JSON`.

Imports TensorRT's real bindings over stub libraries, then either checks names (`api`) or
installs the signature-checked fake (fake_trt.py) as `tensorrt` and drives ddt-export's own
engine builder and TensorRT runtime through it (`engines`). Prints one JSON line.
"""

from __future__ import annotations

import ast
import ctypes
import importlib.machinery
import json
import sys
from pathlib import Path

SOURCES = tuple(f"ddt_export/backends/tensorrt/{name}.py" for name in ("engines", "env", "backend", "runner"))
REPO = Path(__file__).resolve().parents[3]


def import_bindings(folder: Path):
    for lib in (folder / "stubs" / "needed.txt").read_text().split():
        ctypes.CDLL(str(folder / "stubs" / lib), mode=ctypes.RTLD_GLOBAL)  # satisfies tensorrt.so's NEEDED by soname
    sys.path.insert(0, str(folder))
    import tensorrt_bindings

    return tensorrt_bindings


def trt_names() -> list[str]:
    """Every `trt.A.B...` chain the TensorRT code of ddt-export spells."""
    names = set()
    for rel in SOURCES:
        tree = ast.parse((REPO / rel).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                chain, cur = [], node
                while isinstance(cur, ast.Attribute):
                    chain.append(cur.attr)
                    cur = cur.value
                if isinstance(cur, ast.Name) and cur.id == "trt":
                    names.add(".".join(["trt", *reversed(chain)]))
    # keep only maximal chains (trt.DataType.FLOAT implies trt.DataType)
    return sorted(n for n in names if not any(o.startswith(n + ".") for o in names))


def api(real, args: dict) -> dict:
    missing, checked = [], []
    for name in trt_names():
        obj = real
        try:
            for part in name.split(".")[1:]:
                obj = getattr(obj, part)
            checked.append(name)
        except AttributeError:
            missing.append(name)
    return {"version": real.__version__, "checked": checked, "missing": missing}


def engines(real, args: dict) -> dict:
    """Build engines for a copy of a build with polygraphy through the fake, then sample with the TensorRT backend."""
    import os

    from tests.backends.tensorrt.fake_trt import FakeModule, onnx_behaviours

    os.environ["DDT_EXPORT_CACHE"] = args["cache"]  # the timing cache goes to the test's folder
    fake = FakeModule(real, onnx_behaviours(real))
    fake.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    sys.modules["tensorrt"] = fake

    import numpy as np
    import torch

    torch.set_num_threads(1)
    from ddt_export.backends.tensorrt import engines as eng_mod
    from ddt_export.backends.tensorrt import env
    from ddt_export.backends.tensorrt.backend import TensorRTBackend
    from ddt_export.errors import DDTError
    from ddt_export.manifest import read
    from ddt_export.pipeline import Pipeline
    from tests.backends.tensorrt.host_device import HostDevice

    # No GPU here: the device query and the "is TensorRT usable" check are the two things replaced. The device is
    # host memory with a stream that orders nothing, where the stand-in TensorRT reads and writes the bound addresses.
    env.missing = lambda: None
    env.Device.here = classmethod(lambda cls, index=None: HostDevice("stand-in (no GPU)", "0.0", fake.__version__))

    build = Path(args["build"])
    m = eng_mod.rebuild_engines(build, max_batch=args["max_batch"], opt_level=args["opt_level"])
    rec = fake.record
    out = {
        "version": real.__version__,
        "engines": m.doc.engines.model_dump(mode="json"),
        "calls": rec.names(),
        "sets": [[k, str(v)] for k, v in rec.sets],
        "network_flags": [kw.get("flags", a[0] if a else None) for name, a, kw in rec.calls if name == "Builder.create_network"],
        "profile_shapes": [[a[0], *map(list, a[1:4])] for name, a, kw in rec.calls if name == "IOptimizationProfile.set_shape"],
        "flags_set": [str(a[0]) for name, a, kw in rec.calls if name == "IBuilderConfig.set_flag"],
        "flags_cleared": [str(a[0]) for name, a, kw in rec.calls if name == "IBuilderConfig.clear_flag"],
        "timing_cache_files": sorted(p.name for p in eng_mod.cache_dir().glob("*.cache")),
        "strongly_typed_bit": 1 << int(real.NetworkDefinitionCreationFlag.STRONGLY_TYPED),
    }

    # The runtime: same build, TensorRT backend on the host stand-in device vs the onnxruntime backend.
    m = read(build)
    backend = TensorRTBackend(m, cuda_graphs=False)
    trt_pipe = Pipeline(backend, arch=m.arch, null_class=m.null_class, sampler=m.sampler, space=m.space, manifest=m)
    ort_pipe = Pipeline.load(build, "onnxruntime")
    kw = dict(seed=3, num_steps=args["steps"], recompute=args["recompute"])
    got = trt_pipe.generate(args["labels"], **kw).latents
    want = ort_pipe.generate(args["labels"], **kw).latents
    runner = backend.runner(2 * len(args["labels"]))
    enc_ctx, dec_ctx = (ctx.state for ctx in runner._ctx[False])  # every row
    enc_half, dec_half = (ctx.state for ctx in runner._ctx[True])  # the conditional half
    again = trt_pipe.generate(args["labels"], **kw).latents  # reuses the runner: buffers allocated once per batch
    out["run"] = {
        "max_abs_diff_vs_onnxruntime": float(np.abs(got - want).max()),
        "max_abs_want": float(np.abs(want).max()),
        "repeat_identical": bool(np.array_equal(got, again)),
        "same_runner_reused": backend.runner(2 * len(args["labels"])) is runner,
        "encoder_executions": enc_ctx.get("executions", 0),
        "decoder_executions": dec_ctx.get("executions", 0),
        "encoder_half_executions": enc_half.get("executions", 0),
        "decoder_half_executions": dec_half.get("executions", 0),
        "half_rows_are_views": all(c["addresses"][k] - getattr(runner, k).data_ptr() == getattr(runner, k)[: len(args["labels"])].numel()
                                   * getattr(runner, k).element_size() for c, ks in ((enc_half, "xtys"), (dec_half, "xsv")) for k in ks),
        "half_shapes": {**{f"encoder.{k}": list(v) for k, v in enc_half["shapes"].items()}, **{f"decoder.{k}": list(v) for k, v in dec_half["shapes"].items()}},
        "state_shared": enc_ctx["addresses"]["s"] == dec_ctx["addresses"]["s"] == runner.s.data_ptr(),
        "x_shared": enc_ctx["addresses"]["x"] == dec_ctx["addresses"]["x"],
        "input_shapes": {**{f"encoder.{k}": list(v) for k, v in enc_ctx["shapes"].items()}, **{f"decoder.{k}": list(v) for k, v in dec_ctx["shapes"].items()}},
        "s_dtype": str(runner.s.dtype),
    }
    # Refusals: a batch outside the profile, and engines from another TensorRT version.
    try:
        backend.runner(2 * (args["max_batch_profile"] + 1))
        out["too_big"] = None
    except DDTError as e:
        out["too_big"] = str(e)
    m.doc.engines.tensorrt = "9.9.9"
    try:
        TensorRTBackend(m)
        out["other_version"] = None
    except DDTError as e:
        out["other_version"] = str(e)
    return out


def main() -> None:
    folder, scenario, args = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    real = import_bindings(folder)
    result = {"api": api, "engines": engines}[scenario](real, args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
