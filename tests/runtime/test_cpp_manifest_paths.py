"""Paths inside a manifest, in C++ as in Python (issue 26, item 4): the C++ reader checks manifest.py's digest (an unkeyed
checksum: integrity, not authenticity), refuses `files` entries outside the folder and any path the manifest names that is
not one of its hashed files, and verifies a calibration's file before reading it.

The digest hashes Python's json.dumps(sort_keys=True, separators=(",", ":")) of the manifest, so the C++ text of it
(text.cpp's python_json, float_repr) is held to Python's on real builds, on documents with hard floats and strings, and on
20,000 doubles drawn from every exponent.
"""

from __future__ import annotations

import json
import random
import shutil
import struct

import numpy as np
import pytest

from ddt_export.manifest import digest
from tests.runtime.conftest import run
from tests.runtime.test_cpp_limits import probe


def hexed(text: str) -> str:
    return "x" + text.encode().hex()


def python_text(doc) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


HARD_FLOATS = [0.0, -0.0, 1.0, -1.0, 0.1, 0.3, 1 / 3, 1e-4, 9.999e-5, 1e-5, 1.5e-7, 1e15, 1e16, 9999999999999998.0, 1.2345678901234568e17,
               123456.789, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 2.5, 100.0, 1e22, 1e23, 0.30000000000000004,
               3.4028234663852886e38, 1.1754943508222875e-38, 4.35, 0.5 - 2**-54, 1e-7 * 3]
HARD_STRINGS = ["", "plain", 'quote " and \\ backslash', "tab\tnewline\nreturn\rback\bfeed\f", "\x00\x01\x1f\x7f", "é ü ß",
                "\u00a0\u200b\ufeff", "日本語", "😀 \U0001f600\U00010000", "\U0010ffff", "/", "<>&'"]


def test_float_text_is_pythons(runtime_build):
    rng = random.Random(0)
    values = HARD_FLOATS + [struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0] for _ in range(10_000)]
    values += [rng.uniform(-1, 1) * 10.0 ** rng.randint(-30, 30) for _ in range(10_000)]
    values = [v for v in values if np.isfinite(v)]
    cpp = probe(runtime_build, [f"floatrepr {struct.unpack('<Q', struct.pack('<d', v))[0]:x}" for v in values])
    wrong = [(v, repr(v), c) for v, c in zip(values, cpp) if repr(v) != c]
    assert not wrong, wrong[:10]


def test_json_text_is_pythons(runtime_build, built, lt_build, calibrated):
    docs = [json.loads((b / "manifest.json").read_text()) for b in (built, lt_build, calibrated)]
    docs += [{"floats": HARD_FLOATS, "strings": HARD_STRINGS, "nested": {"z": [[], {}, [{"b": 1, "a": [True, False, None]}]]},
              "ints": [0, -1, 2**63 - 1, -2**63, 2**64 - 1], **{s: s for s in HARD_STRINGS}}]
    docs += [{"é": 1, "e": 2, "E": 3, "😀": 4, "\u00a0": 5, "a b": 6}]
    cpp = probe(runtime_build, [f"pyjson {hexed(json.dumps(d))}" for d in docs])
    assert cpp == [python_text(d) for d in docs]


def restamped(src, dst, edit) -> None:
    """A copy of a build whose manifest `edit` changed and whose digest is stamped again (so only the edit is wrong)."""
    shutil.copytree(src, dst)
    data = json.loads((dst / "manifest.json").read_text())
    edit(data)
    data["digest"] = digest(data)
    (dst / "manifest.json").write_text(json.dumps(data, indent=2))


def one_error_line(ddt_run, build, *args) -> str:
    r = run([ddt_run, build, "--labels", "1", "--steps", "2", "--threads", "1", *args], timeout=120)
    lines = r.stderr.splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (r.returncode, r.stderr[-2000:])
    return lines[0]


def test_an_edited_manifest_is_refused(built, ddt_run, tmp_path):
    shutil.copytree(built, tmp_path / "b")
    path = tmp_path / "b" / "manifest.json"
    data = json.loads(path.read_text())
    data["sampler"]["guidance"] = 7.0  # a hand edit: every file still matches its hash
    path.write_text(json.dumps(data, indent=2))
    assert "was edited by hand (its digest no longer matches)" in one_error_line(ddt_run, tmp_path / "b")


def move_encoder_out(data):
    data["files"]["../encoder.onnx"] = data["files"].pop("encoder.onnx")
    data["graphs"]["encoder"]["file"] = "../encoder.onnx"


@pytest.mark.parametrize("name,edit,words", [
    ("files-outside", move_encoder_out, "files names '../encoder.onnx', which is not inside the build folder"),
    ("files-absolute", lambda d: d["files"].update({"/etc/hostname": d["files"]["encoder.onnx"]}), "files names '/etc/hostname'"),
    ("graph-unhashed", lambda d: d["graphs"]["encoder"].update(file="other.onnx"),
     "graphs.encoder.file names 'other.onnx', which is not one of the build's hashed files"),
    ("graph-climbs-out", lambda d: d["graphs"]["decoder"].update(file="../decoder.onnx"), "graphs.decoder.file names '../decoder.onnx'"),
    ("weights-unhashed", lambda d: d.update(weights_file="/etc/passwd"), "weights_file names '/etc/passwd'"),
    ("calibration-unhashed", lambda d: d["calibration"].update(x={"file": "../sim.npy", "sampler": d["sampler"]}),
     "calibration.x.file names '../sim.npy', which is not one of the build's hashed files"),
    ("libtorch-unhashed", lambda d: d.update(libtorch={"format": "torchscript", "encoder": {"file": "e.ts"}, "decoder": {"file": "d.ts"}}),
     "libtorch.encoder.file names 'e.ts'"),
])
def test_paths_a_manifest_names_stay_in_its_hashed_files(built, ddt_run, tmp_path, name, edit, words):
    restamped(built, tmp_path / name, edit)
    assert words in one_error_line(ddt_run, tmp_path / name)


def test_a_replaced_calibration_file_is_refused(calibrated, ddt_run, tmp_path):
    """A calibration matrix replaced by one of the same size is refused, not used for the DP (here when the build is
    opened; a matrix replaced after that is refused when read: test_runtime.cpp's calibration_found_by_settings)."""
    shutil.copytree(calibrated, tmp_path / "b")
    entry = next(iter(json.loads((tmp_path / "b" / "manifest.json").read_text())["calibration"].values()))
    sim = tmp_path / "b" / entry["file"]
    ok = run([ddt_run, tmp_path / "b", "--labels", "1", "--steps", "12", "--sharing-ratio", "0.5", "--threads", "1"], timeout=120)
    assert ok.returncode == 0, ok.stderr
    np.save(sim, np.load(sim)[::-1].copy())  # same size, other values: only the hash tells
    line = one_error_line(ddt_run, tmp_path / "b", "--steps", "12", "--sharing-ratio", "0.5")
    assert f"{entry['file']} does not match its sha256 in the manifest" in line
