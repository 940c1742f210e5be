"""A/B per call of two B/2-256 fp32 builds that differ only in RoPE (stack vs stack-free, d658bd8 vs the commit after it),
OpenVINO bf16/f32 and onnxruntime fp32, interleaved rounds in one process. engines/ddt-b-256 built before the change,
engines/ddt-b-256-rope after it (ddt-export build --preset b --res 256 --random-weights --out ...)."""
import time, statistics, json, numpy as np, openvino as ov, onnxruntime as ort
from ddt_export.manifest import read
builds = {"stack RoPE": "engines/ddt-b-256", "stack-free RoPE": "engines/ddt-b-256-rope"}
core = ov.Core(); m = read(builds["stack RoPE"]); rng = np.random.default_rng(0)
res = {}
runs = {}
for name in ("encoder", "decoder"):
    spec = m.graph(name)
    feeds = {t.name: ((np.arange(2) % 1000).astype(np.int64) if t.dtype == "int64" else rng.standard_normal(t.concrete(2)).astype(np.float32)) for t in spec.inputs}
    for label, b in builds.items():
        for hint in ("bf16", "f32"):
            model = core.read_model(f"{b}/{name}.onnx"); model.reshape({k: list(v.shape) for k, v in feeds.items()})
            c = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"})
            r = c.create_infer_request(); r.infer(feeds)
            runs[(name, label, "openvino " + hint)] = (lambda r=r, f=feeds: r.infer(f))
        o = ort.SessionOptions(); o.log_severity_level = 3
        sess = ort.InferenceSession(f"{b}/{name}.onnx", o, providers=["CPUExecutionProvider"]); sess.run(None, feeds)
        runs[(name, label, "onnxruntime fp32")] = (lambda s=sess, f=feeds: s.run(None, f))
times = {k: [] for k in runs}
for _ in range(9):
    for k, f in runs.items():
        t0 = time.perf_counter(); f(); times[k].append(time.perf_counter() - t0)
import os
print(os.getloadavg())
for k, v in times.items(): print(f"{k[0]:8s} {k[2]:18s} {k[1]:16s} {1e3*statistics.median(v):8.1f} ms")
json.dump({"|".join(k): [1e3*x for x in v] for k, v in times.items()} | {"load": os.getloadavg()}, open("benchmarks/results/rope-stack-free-b256.json", "w"))
