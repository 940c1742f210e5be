"""Builds: the manifest's contents, atomic output, and what a failed build leaves behind."""

import json

import onnx
import pytest

from ddt_export import sources
from ddt_export.build import build
from ddt_export.errors import DDTError
from ddt_export.files import sha256
from ddt_export.manifest import read
from ddt_export.config import DDTConfig
from ddt_export.model import DDT, init_random
from ddt_export.official import ModelSource
from ddt_export.sampler import SamplerSettings


def test_manifest_describes_the_build(built, official):
    m = json.loads((built / "manifest.json").read_text())
    assert m["model"]["architecture"]["num_encoder_blocks"] == 3 and m["model"]["latent_shape"] == [4, 8, 8]
    assert m["model"]["null_class"] == 10 and m["sampler"]["num_steps"] == 12 and m["precision"] == "fp32"
    enc = m["graphs"]["encoder"]
    assert [t["name"] for t in enc["inputs"]] == ["x", "t", "y"] and enc["inputs"][0]["shape"] == ["batch", 4, 8, 8]
    assert enc["outputs"] == [{"name": "s", "dtype": "float32", "shape": ["batch", 16, 64]}]
    for g in ("encoder", "decoder"):
        assert m["graphs"][g]["check"]["max_rel_error"] < 1e-4
    for f, e in m["files"].items():
        assert sha256(built / f) == e["sha256"]
    assert {"encoder.onnx", "decoder.onnx", "model.safetensors"} <= set(m["files"])
    assert {"torch", "onnx", "onnxruntime", "ddt_export"} <= set(m["tools"])


def test_graphs_declare_the_manifest_tensors(built):
    m = read(built)
    for name in ("encoder", "decoder"):
        g = onnx.load(str(built / f"{name}.onnx"))
        spec = m.graph(name)
        assert [i.name for i in g.graph.input] == [t.name for t in spec.inputs]
        assert [o.name for o in g.graph.output] == [t.name for t in spec.outputs]
        dims = [d.dim_param or d.dim_value for d in g.graph.input[0].type.tensor_type.shape.dim]
        assert dims == ["batch", 4, 8, 8]
        assert g.opset_import[0].version == m.doc.opset


def tiny_source():
    arch = DDTConfig(hidden_size=32, num_groups=2, num_blocks=3, num_encoder_blocks=2, num_classes=4, latent_size=4)
    return ModelSource("t", arch, 4, SamplerSettings(num_steps=4)), init_random(DDT(arch))


def test_failed_build_leaves_nothing_and_keeps_the_old_build(tmp_path):
    src, model = tiny_source()
    out = tmp_path / "b"
    build(src, model, out)
    before = (out / "manifest.json").read_text()

    def boom(tmp, data, model):
        assert (tmp / "encoder.onnx").is_file()
        raise DDTError("interrupted")

    with pytest.raises(DDTError):
        build(src, model, out, extras=[boom])
    assert (out / "manifest.json").read_text() == before  # the old build is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == [".b.lock", "b"]  # no partial folders (the lock file stays: files.py)
    with pytest.raises(DDTError):
        build(src, model, tmp_path / "new", extras=[boom])
    assert not (tmp_path / "new").exists()


def test_build_modes_follow_the_umask(tmp_path):
    """mkdtemp and safetensors create owner-only entries; a build served by another user must be readable."""
    import os
    import stat

    src, model = tiny_source()
    old = os.umask(0o022)
    try:
        build(src, model, tmp_path / "b")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o755
    for f in (tmp_path / "b").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f.name


def test_refuses_to_overwrite_a_folder_that_is_not_a_build(tmp_path):
    src, model = tiny_source()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DDTError, match=r"not \(only\) a ddt-export build; nothing was changed"):
        build(src, model, tmp_path / "mine")


def test_presets_need_weights():
    with pytest.raises(DDTError, match="--random-weights"):
        sources.resolve(res=256)
    src, load = sources.resolve(preset_name="b", res=256, random_weights=True)
    model, origin = load()
    assert src.name == "ddt-b-256" and origin == "random" and src.arch.latent_size == 32


@pytest.mark.slow
def test_xl_random_weights_build(tmp_path):
    """XL/2-256 in fp32: the encoder passes 2 GB, so its weights go to external data."""
    src, load = sources.resolve(preset_name="xl", res=256, random_weights=True)
    model, origin = load()
    m = build(src, model, tmp_path / "xl")
    assert any(f.endswith(".data") for f in m.doc.files)
    assert m.doc.graphs["encoder"].check.max_rel_error < 1e-4
