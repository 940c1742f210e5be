"""The package's shape: no import cycles (imports inside functions count), low layers never import high ones,
light modules stay light, no module past ~400 lines, and every module says what it owns on its first line."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "ddt_export"
LOW = {"config", "manifest_schema", "config_schema", "model", "graphs", "manifest", "sampler", "schedules", "export", "dtypes", "files", "errors", "metrics"}
HIGH = {"pipeline", "bench", "cli", "scale", "describe"}
MAX_LINES = 420


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PKG.rglob("*.py")}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every ddt_export module `name` imports, at module level or inside functions."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "ddt_export"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "ddt_export":
                continue
            for a in node.names:  # `from . import schedules` imports a module; `from . import __version__` the package
                out.add(f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod)
    return {m for m in out if m in known and m != name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def short(name: str) -> str:
    return name.split(".")[1] if name.count(".") else name


def test_no_import_cycles():
    g = graph()
    # The package __init__ exposes Pipeline lazily (PEP 562); importing ddt_export.X never runs it, so its edge is not a cycle.
    g["ddt_export"] = set()
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def strong(v):  # Tarjan
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in g:
        if v not in index:
            strong(v)
    assert not cycles, cycles


def test_low_layers_never_import_high_ones():
    g = graph()
    g["ddt_export"] = set()
    for name in g:
        if short(name) not in LOW:
            continue
        seen, todo = set(), [name]
        while todo:
            for w in g[todo.pop()]:
                if w not in seen:
                    seen.add(w)
                    todo.append(w)
        high = sorted(w for w in seen if short(w) in HIGH)
        assert not high, f"{name} reaches {high}"


def test_light_modules_do_not_load_torch_or_backends():
    code = ("import sys, ddt_export.config, ddt_export.manifest, ddt_export.graphs, ddt_export.schedules, ddt_export.sampler, ddt_export.dtypes, ddt_export.files;"
            "print(sorted(m for m in ('torch', 'onnxruntime', 'openvino', 'ddt_export.pipeline', 'ddt_export.backends') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", out


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_module_is_small_and_says_what_it_owns(path):
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_LINES, f"{path.name} has {len(text.splitlines())} lines"
    if text.strip():
        doc = ast.get_docstring(ast.parse(text))
        assert doc and len(doc.splitlines()[0]) > 20, f"{path.name} has no one-line docstring saying what it owns"


# ----------------------------------------------------------------------------- the manifest is typed, functions are short

MAX_FUNCTION_LINES = 60
MANIFEST_MODULES = {"manifest.py", "manifest_schema.py"}


def test_manifest_is_read_only_through_its_typed_models():
    """No module but manifest.py and manifest_schema.py touches the manifest's raw JSON: `Manifest` has no raw dict,
    and nobody else subscripts a `.doc` (or its sections) with a string key or opens manifest.json to parse it."""
    from dataclasses import fields

    from ddt_export.manifest import Manifest

    assert {f.name for f in fields(Manifest)} == {"root", "doc"}
    offenders = []
    for path in PKG.rglob("*.py"):
        if path.name in MANIFEST_MODULES:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                base = ast.unparse(node.value)
                if base.endswith(".doc") or ".doc." in base or base.endswith(".data") and "manifest" in base:
                    offenders.append(f"{path.relative_to(PKG)}:{node.lineno} {ast.unparse(node)}")
            if isinstance(node, ast.Attribute) and node.attr == "data" and ast.unparse(node.value).split(".")[-1] in {"m", "manifest", "m8", "ref_m"}:
                offenders.append(f"{path.relative_to(PKG)}:{node.lineno} {ast.unparse(node)}")
    assert not offenders, offenders


def _long_functions(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        is_command = any(isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr in ("command", "callback")
                         for d in node.decorator_list)  # a typer command is its options' declaration: long by nature
        length = node.end_lineno - node.lineno + 1
        if length > MAX_FUNCTION_LINES and not is_command:
            out.append(f"{path.relative_to(PKG)}:{node.lineno} {node.name} ({length} lines)")
    return out


def test_no_function_over_60_lines_outside_cli_commands():
    long = [f for path in sorted(PKG.rglob("*.py")) for f in _long_functions(path)]
    assert not long, long


def test_committed_json_schema_is_the_models_schema():
    """ddt_export/manifest.schema.json (what the C++ tests validate real manifests against) is generated from the models;
    regenerate it with `python -m ddt_export.manifest_schema` after changing them."""
    import json

    from ddt_export.manifest_schema import json_schema

    committed = json.loads((PKG / "manifest.schema.json").read_text())
    assert committed == json_schema()
