"""Per-call A/B of builds of one model (label=path ...), OpenVINO bf16 (with the manifest's per-token group) and, for
int8 builds, onnxruntime; interleaved rounds in one process. python benchmarks/build_ab.py ROUNDS label=BUILD ...
Writes /tmp/probe/ab2.json (copy it into benchmarks/results/)."""
import sys, time, statistics, json, os, numpy as np, openvino as ov
from ddt_export.manifest import read
from ddt_export.backends.onnxruntime_backend import session
builds = dict(a.split("=", 1) for a in sys.argv[2:])
core = ov.Core(); m = read(next(iter(builds.values()))); rng = np.random.default_rng(0)
runs = {}
for name in ("encoder", "decoder"):
    spec = m.graph(name)
    feeds = {t.name: ((np.arange(2) % 1000).astype(np.int64) if t.dtype == "int64" else rng.standard_normal(t.concrete(2)).astype(np.float32)) for t in spec.inputs}
    for label, b in builds.items():
        mb = read(b)
        cfg = {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY"}
        q = mb.doc.quantization
        if q is not None and q.scheme.per_token is not None:
            cfg["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = q.scheme.per_token.group_size
        model = core.read_model(f"{b}/{name}.onnx"); model.reshape({k: list(v.shape) for k, v in feeds.items()})
        c = core.compile_model(model, "CPU", cfg); r = c.create_infer_request(); r.infer(feeds)
        runs[(name, label, "openvino bf16")] = (lambda r=r, f=feeds: r.infer(f))
        if mb.precision == "int8":
            pt = q is not None and (q.graphs[name].per_token_nodes or 0) > 0
            s = session(f"{b}/{name}.onnx", ["CPUExecutionProvider"], quantized=True, fold_weights=pt); s.run(None, feeds)
            runs[(name, label, "onnxruntime")] = (lambda s=s, f=feeds: s.run(None, f))
times = {k: [] for k in runs}
for _ in range(int(sys.argv[1])):
    for k, f in runs.items():
        t0 = time.perf_counter(); f(); times[k].append(time.perf_counter() - t0)
print(os.getloadavg())
for k, v in times.items(): print(f"{k[0]:8s} {k[2]:14s} {k[1]:22s} {1e3*statistics.median(v):8.1f} ms")
json.dump({"load": os.getloadavg(), "builds": builds, "ms": {"|".join(k): [1e3*x for x in v] for k, v in times.items()}}, open("/tmp/probe/ab2.json", "w"), indent=1)
