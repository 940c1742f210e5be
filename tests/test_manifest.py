"""The typed manifest: old builds' manifests read and round-trip unchanged, every named path is a hashed file of the
build, bad documents are refused in one line, and a read-modify-write keeps what it does not know."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ddt_export.errors import DDTError
from ddt_export.manifest import NAME, digest, migrate, read, update
from ddt_export.manifest_schema import FORMAT, ManifestDoc

DATA = Path(__file__).parent / "data"
OLD = sorted(DATA.glob("manifest-format1-*.json"))  # written by ddt-export 0.1.0 before the models existed


def _normalised(data: dict) -> dict:
    """What an old manifest must read back as: the same document, plus the fields added since with their defaults
    (every sampler section says Euler), and the quantiser's range record under its new key."""
    data = json.loads(json.dumps(data))
    for settings in [data["sampler"], *(c["sampler"] for c in data["calibration"].values())]:
        settings.update(sampler="euler", order=1)
    if "quantization" in data and "calibration" in data["quantization"]:
        data["quantization"]["ranges"] = data["quantization"].pop("calibration")
    return data


@pytest.mark.parametrize("path", OLD, ids=lambda p: p.stem)
def test_old_manifests_read_and_round_trip_without_loss(path):
    old = json.loads(path.read_text())
    doc = ManifestDoc.model_validate(migrate(old, path))
    assert doc.dump() == _normalised(old)
    assert digest(old) == old["digest"]  # the fixture is untouched, so its digest is the one that build wrote


def test_the_fixtures_cover_the_sections_extras_add():
    sections = set().union(*(json.loads(p.read_text()).keys() for p in OLD))
    assert {"libtorch", "quantization"} <= sections


def _copy(build: Path, tmp_path: Path) -> Path:
    out = tmp_path / "b"
    shutil.copytree(build, out)
    return out


def _edit(folder: Path, change) -> None:
    data = json.loads((folder / NAME).read_text())
    change(data)
    data["digest"] = digest(data)  # a consistent manifest: only the checks under test can refuse it
    (folder / NAME).write_text(json.dumps(data))


def test_a_newer_or_unknown_format_names_its_version(built, tmp_path):
    b = _copy(built, tmp_path)
    _edit(b, lambda d: d.update(format=FORMAT + 1))
    with pytest.raises(DDTError, match=rf"manifest format {FORMAT + 1}, this version reads {FORMAT}\); rebuild it with `ddt-export build`"):
        read(b)


@pytest.mark.parametrize("where,bad", [
    ("calibration", "../outside.npy"),
    ("calibration", "/etc/passwd"),
    ("weights_file", "../model.safetensors"),
])
def test_every_path_a_manifest_names_stays_inside_the_build(built, tmp_path, where, bad):
    b = _copy(built, tmp_path)

    def change(d):
        if where == "calibration":
            d["calibration"]["k"] = {"file": bad, "samples": 8, "seed": 0, "sampler": d["sampler"]}
        else:
            d[where] = bad

    _edit(b, change)
    with pytest.raises(DDTError, match="is not inside the build folder") as e:
        read(b)
    assert "\n" not in str(e.value)


def test_a_named_file_must_be_one_the_manifest_hashed(built, tmp_path):
    b = _copy(built, tmp_path)
    (b / "planted.npy").write_bytes(b"\x93NUMPY")
    _edit(b, lambda d: d["calibration"].update(k={"file": "planted.npy", "samples": 8, "seed": 0, "sampler": d["sampler"]}))
    with pytest.raises(DDTError, match=r"calibration\.k\.file names 'planted.npy', which is not one of the build's hashed files"):
        read(b)


def test_a_deeply_nested_manifest_is_one_line_not_a_crash(built, tmp_path):
    b = _copy(built, tmp_path)
    (b / NAME).write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(DDTError, match="nested too deeply"):
        read(b)


def test_a_wrong_type_names_the_field(built, tmp_path):
    b = _copy(built, tmp_path)
    _edit(b, lambda d: d["sampler"].update(num_steps="forty"))
    with pytest.raises(DDTError, match=r"sampler\.num_steps: .*rebuild the folder"):
        read(b)


def test_sampler_settings_in_a_manifest_obey_the_cli_rules(built, tmp_path):
    """One set of rules: the manifest's sampler sections are checked by SamplerSettings.validate, as the CLI's options."""
    b = _copy(built, tmp_path)
    _edit(b, lambda d: d["sampler"].update(interval_min=0.9, interval_max=0.1))
    with pytest.raises(DDTError, match="guidance interval 0.9,0.1 is reversed"):
        read(b)


def test_update_keeps_fields_it_does_not_know(built, tmp_path):
    """A manifest from a newer ddt-export of the same format survives a read-modify-write (e.g. `calibrate`)."""
    b = _copy(built, tmp_path)
    _edit(b, lambda d: (d.update(future_section={"x": 1}), d["model"].update(future_field=[1, 2])))
    m = read(b)
    updated = update(m, lambda doc: setattr(doc, "build_seconds", 1.5))
    assert updated is not None
    data = json.loads((b / NAME).read_text())
    assert data["future_section"] == {"x": 1} and data["model"]["future_field"] == [1, 2] and data["build_seconds"] == 1.5
    assert data["digest"] == digest(data)
    assert read(b).doc.build_seconds == 1.5


def test_a_fresh_build_writes_what_it_reads(built):
    """Every section build writes is declared: the written JSON is exactly the typed document's dump."""
    data = json.loads((built / NAME).read_text())
    assert read(built).doc.dump() == data
    assert "last_step" in data["sampler"]  # null means 1 / N: written even when None (the C++ reader requires the key)
