"""Per-call time and error of the per-token int8 scheme against static int8 and bf16, in one process (issue 24).

Takes an fp32 build and a static-int8 build of the same model (one made before per-token sites, or
with them), derives the per-token variant of the int8 graphs the way `build --precision int8` does
(quant/per_token.py: every float site with a weight compressed, activations per token at run time),
and times every (graph, runtime, setting) row per call at one CFG batch, interleaved (each round
times every row once; the median of the rounds is reported). The error of each row is the relative
L2 distance of its output to the fp32 graph run by OpenVINO in f32, on the same inputs (t uniform,
classes spread, x standard normal, the decoder's s the fp32 encoder's output on them).

    python benchmarks/int8_per_token.py engines/ddt-b-256 engines/ddt-b-256-int8 \
        --json benchmarks/results/int8-per-token-b256.json

Note what it does not do: it compresses every float site with a weight, where the build's rule may
keep some float; the build records its own per-site errors in the manifest.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np

from build_ab import interleaved  # benchmarks/ is on sys.path when a script here runs
from ddt_export.bench.machine import cpu_name


def inputs(manifest, batch: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    spec = manifest.graph("encoder")
    feeds = {}
    for t in spec.inputs:
        shape = t.concrete(batch)
        if t.dtype == "int64":
            feeds[t.name] = (np.arange(batch) * 7 % manifest.arch.num_classes).astype(np.int64).reshape(shape)
        elif len(shape) == 1:
            feeds[t.name] = rng.uniform(0, 1, shape).astype(np.float32)
        else:
            feeds[t.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def per_token_graph(int8_build: Path, name: str, arch, out: Path) -> Path:
    import onnx

    from ddt_export.manifest import read
    from ddt_export.quant import per_token
    from ddt_export.quant.graph import save
    from ddt_export.quant.sites import site_nodes

    m = read(int8_build)
    model = onnx.load(str(int8_build / f"{name}.onnx"))
    sites = site_nodes(model, arch.num_encoder_blocks)
    float_sites = per_token.candidates(list(m.doc.quantization.graphs[name].float_sites))
    nodes = [n for s in float_sites for n in sites[s]]
    path = out / f"{name}-per-token.onnx"
    save(per_token.compress(model, nodes, [n for v in sites.values() for n in v]), path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("fp32_build")
    ap.add_argument("int8_build")
    ap.add_argument("--batch", type=int, default=2, help="CFG batch per call [2: one image, both halves]")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--groups", default="32,64,128", help="per-token group sizes to time")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()

    import onnxruntime as ort
    import openvino as ov

    from ddt_export.backends.onnxruntime_backend import session
    from ddt_export.manifest import read

    fp32_build, int8_build = Path(args.fp32_build), Path(args.int8_build)
    m = read(fp32_build)
    core = ov.Core()
    enc_feeds = inputs(m, args.batch)
    enc_ref = core.compile_model(str(fp32_build / "encoder.onnx"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    s = enc_ref.create_infer_request().infer(enc_feeds)[enc_ref.output(0)].copy()
    dec_names = [t.name for t in m.graph("decoder").inputs]
    dec_feeds = {dec_names[0]: enc_feeds[m.graph("encoder").inputs[0].name], dec_names[1]: s}
    feeds = {"encoder": enc_feeds, "decoder": dec_feeds}
    groups = [int(g) for g in args.groups.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        rows = {}
        for name in ("encoder", "decoder"):
            pt = per_token_graph(int8_build, name, m.arch, Path(tmp))
            fp32, int8 = fp32_build / f"{name}.onnx", int8_build / f"{name}.onnx"

            def ov_row(path, hint, group=None):
                cfg = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
                if group is not None:
                    cfg["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = group
                model = core.read_model(str(path))
                model.reshape({i.get_any_name(): list(feeds[name][i.get_any_name()].shape) for i in model.inputs})
                compiled = core.compile_model(model, "CPU", cfg)
                req, f = compiled.create_infer_request(), feeds[name]  # bound now: the loop moves on
                return lambda: req.infer(f)[compiled.output(0)].copy()

            def ort_row(path, fold):
                sess, f = session(path, ["CPUExecutionProvider"], quantized=True, fold_weights=fold), feeds[name]
                return lambda: sess.run(None, f)[0]

            rows[(name, "fp32 graph", "openvino f32")] = ov_row(fp32, "f32")
            rows[(name, "fp32 graph", "openvino bf16")] = ov_row(fp32, "bf16")
            rows[(name, "static int8", "openvino bf16")] = ov_row(int8, "bf16")
            rows[(name, "static int8", "openvino f32")] = ov_row(int8, "f32")
            rows[(name, "static int8", "onnxruntime")] = ort_row(int8, False)
            for g in groups:
                rows[(name, "per-token int8", f"openvino f32 group {g}")] = ov_row(pt, "f32", g)
            rows[(name, "per-token int8", f"openvino bf16 group {groups[0]}")] = ov_row(pt, "bf16", groups[0])
            rows[(name, "per-token int8", "onnxruntime (folded)")] = ort_row(pt, True)
        reference = {name: rows[(name, "fp32 graph", "openvino f32")]() for name in ("encoder", "decoder")}
        errors = {}
        for key, run in rows.items():
            out = run()
            run()  # warm-up
            errors[key] = float(np.linalg.norm(out - reference[key[0]]) / np.linalg.norm(reference[key[0]]))
        times = interleaved(rows, args.rounds, say=lambda r: print(f"round {r + 1}/{args.rounds}", flush=True))

    result = {
        "cpu": cpu_name(), "cores": os.cpu_count(), "openvino": ov.__version__, "onnxruntime": ort.__version__,
        "fp32_build": str(fp32_build), "int8_build": str(int8_build), "batch": args.batch, "rounds": args.rounds,
        "load_average": os.getloadavg(),
        "rows": [{"graph": k[0], "graphs": k[1], "runtime": k[2], "ms": 1e3 * statistics.median(v),
                  "ms_all": [1e3 * x for x in v], "rel_error_vs_fp32": errors[k]} for k, v in times.items()],
    }
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{result['cpu']}, {args.batch}-row CFG batch, median of {args.rounds} interleaved rounds")
    for name in ("encoder", "decoder"):
        base = statistics.median(times[(name, "fp32 graph", "openvino bf16")])
        for k, v in times.items():
            if k[0] == name:
                print(f"{name:8s} {k[1]:15s} {k[2]:26s} {1e3 * statistics.median(v):8.1f} ms  "
                      f"{base / statistics.median(v):5.2f}x bf16  error {errors[k]:.2e}")


if __name__ == "__main__":
    main()
