"""`--backend auto` on an int8 build: the CPU runtime a short probe measures faster on this host, remembered per host.

Which runtime runs int8 fastest depends on the CPU, not on the build: onnxruntime's QDQ kernels were
the fastest on one Intel Xeon and slower than OpenVINO's bf16 on an AMD Zen 4 (benchmarks/precision.md).
So the choice is measured: each candidate opens the build, runs one encoder and one decoder call at a
CFG batch of 2 (warm-up), then PROBE_CALLS timed pairs; the fastest median wins. The result is kept in
the user cache (files.user_cache) under the build's digest, the CPU's model name and the runtimes'
versions, so the probe runs once per build and host; a cache entry that cannot be read is measured again.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Callable

from ..bench.machine import cpu_name
from ..files import atomic_write, user_cache
from ..manifest import Manifest

CANDIDATES = ("onnxruntime", "openvino")
PROBE_CALLS = 3
CACHE_FILE = "backend-probe.json"


def host_key(manifest: Manifest) -> str:
    """What the measured choice depends on: this build, this CPU model, these runtime versions."""
    import onnxruntime
    import openvino

    from ..manifest import digest

    build = manifest.doc.digest or digest(manifest.doc.dump())
    return f"{build}|{cpu_name()}|onnxruntime {onnxruntime.__version__}|openvino {openvino.__version__}"


def time_calls(backend) -> float:
    """Median seconds of one encoder + decoder call pair of an opened backend, CFG batch 2."""
    runner = backend.runner(2)
    runner.encode()
    runner.decode()
    times = []
    for _ in range(PROBE_CALLS):
        t0 = time.perf_counter()
        runner.encode()
        runner.decode()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def fastest(manifest: Manifest, measure: Callable[[str, Manifest], float], say: Callable[[str], None] = lambda m: None) -> str:
    """The candidate runtime with the smallest `measure(name, manifest)` on this host (cached per build, CPU and versions);
    backends/__init__.py measures with `time_calls` on each backend opened."""
    path, key = user_cache() / CACHE_FILE, host_key(manifest)
    cached = _read(path)
    if key in cached and cached[key].get("backend") in CANDIDATES:
        return cached[key]["backend"]
    say(f"--backend auto: timing {' and '.join(CANDIDATES)} on this int8 build once (cached in {path})")
    seconds = {name: measure(name, manifest) for name in CANDIDATES}
    best = min(seconds, key=seconds.get)
    cached = _read(path)  # another process may have written meanwhile
    cached[key] = {"backend": best, "seconds_per_call_pair": seconds}
    try:
        atomic_write(path, lambda f: f.write(json.dumps(cached, indent=1).encode()))
    except OSError as e:  # a read-only home costs a probe per run, not the run
        say(f"--backend auto: could not remember the choice ({e.strerror}: {path})")
    return best


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}
