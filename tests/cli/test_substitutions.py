"""No silent substitutions (issue 26, item 7): do what was asked or refuse in one line. The torch backend will not stand
in for a reduced-precision build's graphs, and `calibrate --samples` replaces a calibration of the same settings
measured with another sample count (the same count again is a no-op that says so). `--schedule` without a ratio is in
tests/cli/test_bad_input.py."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ddt_export.errors import DDTError
from ddt_export.manifest import read


@pytest.mark.parametrize("precision", ["int8", "fp16", "fp8"])
def test_the_torch_backend_refuses_a_build_it_would_not_run(built, precision):
    from ddt_export.backends import open_backend

    m = read(built)
    m.doc.precision = precision  # what a build of that precision says; its graphs are not what torch would run
    with pytest.raises(DDTError, match=f"is a {precision} build; the torch backend runs only its fp32 weights"):
        open_backend("torch", m)
    m.doc.precision = "fp32"
    assert open_backend("torch", m).name == "torch"


def entries(build):
    return [e for e in json.loads((build / "manifest.json").read_text())["calibration"].values() if e["sampler"]["num_steps"] == 4]


def test_recalibrating_with_other_samples_replaces_the_entry(cli, built, tmp_path):
    build = tmp_path / "b"
    shutil.copytree(built, build)
    assert cli("calibrate", build, "--steps", 4, "--samples", 2).code == 0
    (first,) = entries(build)
    r = cli("calibrate", build, "--steps", 4, "--samples", 3)
    assert r.code == 0, r.err
    assert "replaced the 2-sample one" in r.err
    (second,) = entries(build)
    assert second["samples"] == 3 and second["file"] != first["file"]
    assert not (build / first["file"]).exists() and not (build / first["heatmap"]).exists()
    read(build)  # every listed file with its hash, nothing unlisted
    assert {p.name for p in build.iterdir()} == set(read(build).doc.files) | {"manifest.json"}
    before = (build / "manifest.json").read_bytes()
    r = cli("calibrate", build, "--steps", 4, "--samples", 3)
    assert r.code == 0 and "already calibrated for these settings with 3 samples" in r.err and "nothing to do" in r.err
    assert (build / "manifest.json").read_bytes() == before


def test_a_reader_of_the_old_manifest_finds_the_replaced_calibration(cli, built, tmp_path):
    """A process that read the build before `calibrate --samples` replaced an entry still gets the matrix (the new one)."""
    from ddt_export.sampler import SamplerSettings

    build = tmp_path / "b"
    shutil.copytree(built, build)
    assert cli("calibrate", build, "--steps", 4, "--samples", 2).code == 0
    m = read(build)
    settings = m.sampler.with_overrides(num_steps=4)
    assert isinstance(settings, SamplerSettings) and m.similarity(settings) is not None
    assert cli("calibrate", build, "--steps", 4, "--samples", 3).code == 0
    (entry,) = entries(build)
    np.testing.assert_array_equal(m.similarity(settings), np.load(build / entry["file"]))


@pytest.mark.parametrize("flags", [["--max-batch", "8"], ["--opt-level", "3"], ["--max-batch", "4", "--opt-level", "3"]])
def test_engine_options_without_engines_are_refused_before_anything_is_written(cli, tmp_path, flags):
    """--max-batch/--opt-level shape TensorRT engines; `--backend onnx` builds none, so they would be silently ignored."""
    out = tmp_path / "o"
    r = cli("build", "--backend", "onnx", *flags, "--out", out)
    assert r.code == 2, r.err
    assert r.err.strip().splitlines() == [
        "error: --max-batch and --opt-level shape TensorRT engines, which --backend onnx does not build; use --backend tensorrt "
        "or auto, or leave them out"]
    assert list(tmp_path.iterdir()) == []
