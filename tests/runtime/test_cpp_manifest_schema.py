"""The C++ manifest reader and the manifest's JSON Schema cannot drift apart.

The C++ unit suite (test_cpp_runtime.py::test_cpp_unit_suite) validates real manifests against
ddt_export/manifest.schema.json and checks that every path in its table `kReaderKeys`
(runtime/tests/test_runtime.cpp) is declared in the schema, as required unless the table says why
not. Here: every key runtime/src reads with `require(obj, "key", ...)` or `section("key", ...)` is
in that table, so a key the reader starts to require without a schema entry fails a test.
"""

from __future__ import annotations

import re

from tests.runtime.conftest import ROOT, SCHEMA

SOURCES = sorted((ROOT / "runtime" / "src").glob("*.cpp"))
TABLE = ROOT / "runtime" / "tests" / "test_runtime.cpp"


def reader_table() -> list[str]:
    text = TABLE.read_text()
    body = text[text.index("const ReaderKey kReaderKeys[] = {"):]
    body = body[:body.index("};")]
    return re.findall(r'^\s*\{"([^"]+)",', body, re.M)


def required_keys() -> dict[str, set[str]]:
    """key -> the files that `require` it (by literal name), or read it as a section."""
    found: dict[str, set[str]] = {}
    for path in SOURCES:
        code = path.read_text()
        for key in re.findall(r'\brequire\(\s*(?:[^,()]|\([^()]*\))+,\s*"([^"]+)"', code):
            found.setdefault(key, set()).add(path.name)
        for key in re.findall(r'\bsection\(\s*"([^"]+)"', code):
            found.setdefault(key, set()).add(path.name)
    return found


def test_every_required_key_is_in_the_reader_table():
    paths = reader_table()
    assert len(paths) >= 40 and "sampler.num_steps" in paths and "libtorch.encoder.file" in paths
    last_segments = {re.sub(r"\[\]", "", p.split(".")[-1]) for p in paths}
    keys = required_keys()
    assert {"num_classes", "sha256", "file", "inputs", "libtorch", "cfg_batch", "compute_capability"} <= set(keys), keys
    missing = {k: sorted(files) for k, files in keys.items() if k not in last_segments}
    assert not missing, f"runtime/src requires these manifest keys, but kReaderKeys in {TABLE.name} does not list them " \
                        f"(add each with its path, so the schema is checked to declare it): {missing}"


def test_schema_is_in_the_repository():
    assert SCHEMA.is_file(), SCHEMA
    assert '"$defs"' in SCHEMA.read_text()
