"""TensorRT's real Python bindings on a machine without TensorRT: fetched from PyPI, imported over stubs.

`tensorrt-cu12-bindings` (about 1.3 MB) is on PyPI; its `tensorrt.so` needs libnvinfer,
libnvinfer_plugin and libnvonnxparser, but only for a handful of factory functions
(createInferBuilder_INTERNAL, createInferRuntime_INTERNAL, ...): every TensorRT interface
is an abstract class compiled into the bindings. Stub libraries that define those
functions (returning null) let the module import, so every bound class, method, property
and enum, with its signature, is there to check against. Calling a factory fails cleanly
(pybind11 raises on a null return); nothing here runs TensorRT.

Scenarios run in a subprocess (tests/backends/tensorrt/scenarios.py): one bindings version per
process, and the stubs never touch the test process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# The floor pyproject's `tensorrt` extra allows, and the newest on PyPI when this was written.
VERSIONS = ("10.0.1", "11.4.0.106")
CACHE = Path(os.environ.get("DDT_TEST_CACHE") or Path.home() / ".cache" / "ddt-export-tests") / "trt-bindings"
REPO = Path(__file__).resolve().parents[3]
# What the bindings import from TensorRT's libraries (the same set in 10.0 through 11.4).
KNOWN_SYMBOLS = ("createInferBuilder_INTERNAL", "createInferRefitter_INTERNAL", "createInferRuntime_INTERNAL",
                 "createNvOnnxParserRefitter_INTERNAL", "createNvOnnxParser_INTERNAL", "getBuilderPluginRegistry",
                 "getNvOnnxParserVersion", "getPluginRegistry", "initLibNvInferPlugins")


def fetch(version: str) -> Path | str:
    """A folder with `tensorrt_bindings/` and `stubs/` for `version`, or the reason it cannot be had."""
    dest = CACHE / version
    if (dest / "ready").is_file():
        return dest
    if shutil.which("cc") is None:
        return "no C compiler (cc) to build the stub libnvinfer"
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        tmp = Path(tmp)
        try:
            r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
                                f"tensorrt-cu12-bindings=={version}", "-d", str(tmp / "wheel")],
                               capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            return f"pip download tensorrt-cu12-bindings=={version} timed out"
        wheels = list((tmp / "wheel").glob("*.whl"))
        if r.returncode != 0 or not wheels:
            return f"cannot download tensorrt-cu12-bindings=={version} from PyPI: {(r.stderr.strip().splitlines() or ['?'])[-1][:200]}"
        root = tmp / "out"
        with zipfile.ZipFile(wheels[0]) as z:
            z.extractall(root)
        so = root / "tensorrt_bindings" / "tensorrt.so"
        why = _stubs(so, root / "stubs")
        if why:
            return why
        (root / "ready").write_text(wheels[0].name + "\n")
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(root, dest)
    return dest


def _stubs(so: Path, out: Path) -> str | None:
    """One stub library per TensorRT library the bindings need, each defining the symbols they import."""
    out.mkdir(parents=True)
    needed = [ln.split("[")[1].split("]")[0] for ln in _run(["readelf", "-d", str(so)]).splitlines() if "(NEEDED)" in ln and "[libnv" in ln]
    if not needed:
        return "readelf found no libnv* dependency in tensorrt.so (binutils missing?)"
    symbols = set(KNOWN_SYMBOLS)
    for ln in _run(["nm", "-D", "--undefined-only", str(so)]).splitlines():
        parts = ln.split()
        if len(parts) == 2 and parts[0] == "U" and "@" not in parts[1] and not parts[1].startswith(("Py", "_Py", "_Z", "dl")):
            symbols.add(parts[1])
    src = out / "stub.c"
    src.write_text("".join(f"void *{s}(void) {{ return 0; }}\n" for s in sorted(symbols)))
    for lib in needed:
        r = subprocess.run(["cc", "-shared", "-fPIC", f"-Wl,-soname,{lib}", "-o", str(out / lib), str(src)], capture_output=True, text=True)
        if r.returncode != 0:
            return f"cannot compile the stub {lib}: {r.stderr.strip()[:200]}"
    (out / "needed.txt").write_text("\n".join(needed) + "\n")
    return None


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        return ""


def run_scenario(folder: Path, scenario: str, **args) -> dict:
    """Run tests/backends/tensorrt/scenarios.py's `scenario` with the bindings in `folder`; its JSON result."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-m", "tests.backends.tensorrt.scenarios", str(folder), scenario, json.dumps(args)],
                       capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines:
        raise AssertionError(f"scenario {scenario} failed (exit {r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}")
    return json.loads(lines[-1])
