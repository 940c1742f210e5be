"""Class names in builds: `build --class-names FILE`, the defaults (config, ImageNet-1k, digits), the count checked against
the architecture at build and at load, the rules a name must obey, and the ImageNet-1k data file against the package it
was taken from. Name resolution (labels -> ids) is in tests/test_label_names.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ddt_export.class_names import ClassNames, check_names, default_names, imagenet_1k, read_names_file, synonyms
from ddt_export.errors import DDTError
from ddt_export.manifest import NAME, digest, read
from tests.conftest import ARCH, LATENT, SAMPLER
from tests.reference.official_ddt import write_official_yaml

TIMM = "1.0.29"  # the release bundled/imagenet1k.txt was taken from


def _one_line_error(code, err, words):
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, (code, err)
    assert words in lines[0], lines[0]


# ----------------------------------------------------------------------------- the rules for names


def test_a_line_is_synonyms_display_name_first_and_is_stored_normalised():
    assert synonyms(" tabby ,tabby cat ") == ("tabby", "tabby cat")
    assert check_names(["tabby ,  tabby cat", "zero"], 2, "x") == ["tabby, tabby cat", "zero"]


@pytest.mark.parametrize("names,words", [
    (["zero"], "has 1 names but the model has 2 classes"),
    (["zero", "one", "two"], "has 3 names but the model has 2 classes"),
    (["zero", "7"], "reads as a class id"),
    (["zero", "one, -3"], "reads as a class id"),
    (["zero", "one;uno"], "never contain it"),
    (["zero", "one,,uno"], "empty name"),
    (["zero", "one,"], "empty name"),
    (["zero", ""], "empty name"),
    (["zero", "on\x07e"], "control character"),
    (["zero", "x" * 201], "at most 200"),
    (["zero", 1], "must be a list of strings"),
    ("zero", "must be a list of strings"),
])
def test_names_that_break_the_rules_are_refused_in_one_line(names, words):
    with pytest.raises(DDTError, match=None) as e:
        check_names(names, 2, "NAMES")
    assert words in str(e.value) and str(e.value).startswith("NAMES") and "\n" not in str(e.value)


def test_digits_with_digit_synonyms_would_clash_with_ids_so_the_bundled_ones_are_words():
    text = (Path(__file__).parents[1] / "ddt_export" / "bundled" / "digits.yaml").read_text()
    import yaml

    names = yaml.safe_load(text)["ddt_export"]["class_names"]
    assert check_names(names, 10, "digits") == ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


# ----------------------------------------------------------------------------- ImageNet-1k


def test_imagenet_names_are_timms_wordnet_lemmas_in_class_order(tmp_path):
    """bundled/imagenet1k.txt line i == timm's lemma of ImageNet-1k synset i (the package's own files, read from its wheel
    without importing it: timm needs torchvision, whose PyPI build does not load beside the CPU torch pinned here)."""
    got = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(tmp_path),
                          f"timm=={TIMM}"], capture_output=True, text=True)
    if got.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"pip could not fetch timm {TIMM} from the package index: {got.stderr.strip().splitlines()[-1:]}")
        pytest.skip(f"no package index here for timm {TIMM}")
    (wheel,) = tmp_path.glob("timm-*.whl")
    with zipfile.ZipFile(wheel) as z:
        synsets = z.read("timm/data/_info/imagenet_synsets.txt").decode().splitlines()
        lemmas = dict(line.split("\t", 1) for line in z.read("timm/data/_info/imagenet_synset_to_lemma.txt").decode().splitlines())
    assert imagenet_1k() == [lemmas[s] for s in synsets]


def test_imagenet_names_obey_the_rules_and_have_the_known_shared_synonyms():
    names = imagenet_1k()
    assert check_names(names, 1000, "imagenet") == names  # already normalised
    cn = ClassNames(tuple(names))
    assert cn.display(207) == "golden retriever" and cn.synonyms[281] == ("tabby", "tabby cat")
    assert cn.index["crane"] == (134, 517) and cn.index["maillot"] == (638, 639)


def test_a_1000_class_model_is_named_after_imagenet_by_default_and_other_counts_are_not(tmp_path):
    from ddt_export.class_names import build_names
    from ddt_export.official import read_config

    for k, want in ((1000, imagenet_1k()), (10, None)):
        src = read_config(write_official_yaml(tmp_path / f"c{k}.yaml", **{**ARCH, "num_classes": k}, latent_shape=LATENT, **SAMPLER))
        assert build_names(src.arch.num_classes, None, src.extra.get("class_names")) == want
    assert default_names(3, ["a", "b", "c"]) == ["a", "b", "c"]  # a config's own names win over the count's default


# ----------------------------------------------------------------------------- files


@pytest.mark.parametrize("name,content", [
    ("names.txt", "zero, nought\none\r\ntwo\n"),
    ("names.txt", "zero, nought\none\ntwo"),
    ("names.json", json.dumps(["zero, nought", "one", "two"])),
    ("names.txt", "\ufeffzero, nought\none\ntwo\n"),  # a BOM from a Windows editor
])
def test_a_names_file_is_text_one_class_a_line_or_a_json_list(tmp_path, name, content):
    p = tmp_path / name
    p.write_bytes(content.encode())
    assert read_names_file(p, 3) == ["zero, nought", "one", "two"]


@pytest.mark.parametrize("name,content,words", [
    ("n.txt", "zero\none\n", "has 2 names but the model has 3 classes"),
    ("n.txt", "zero\n\ntwo\n", "empty name"),
    ("n.json", '{"0": "zero"}', "must be a list of strings"),
    ("n.json", '["zero", "one"', "not valid JSON"),
    ("n.txt", b"\xff\xfe\x00z", "not UTF-8"),
])
def test_bad_names_files_are_one_line(tmp_path, name, content, words):
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DDTError) as e:
        read_names_file(p, 3)
    assert words in str(e.value) and "\n" not in str(e.value)


# ----------------------------------------------------------------------------- builds


def test_build_class_names_file_lands_in_the_manifest(official, tmp_path, monkeypatch, cli):
    names = [f"class {w}, c{w}" for w in "abcdefghij"]
    (tmp_path / "names.json").write_text(json.dumps(names))
    monkeypatch.chdir(tmp_path)
    r = cli("build", "--config", official.config, "--ckpt", official.ckpt, "--class-names", "names.json", "--out", "b")
    assert r.code == 0, r.err
    m = read(tmp_path / "b")
    assert m.doc.model.class_names == names and m.class_names.display(3) == "class d"


def test_build_refuses_a_names_file_of_the_wrong_count_before_any_work(official, tmp_path, monkeypatch, cli):
    (tmp_path / "names.txt").write_text("zero\none\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    monkeypatch.chdir(tmp_path)
    r = cli("build", "--config", official.config, "--ckpt", official.ckpt, "--class-names", "names.txt", "--out", "b")
    _one_line_error(r.code, r.err, "has 2 names but the model has 10 classes")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_the_bundled_digits_build_names_its_digits(bundled_build):
    m = read(bundled_build)
    assert [m.class_names.display(i) for i in range(10)] == ["zero", "one", "two", "three", "four", "five", "six", "seven",
                                                             "eight", "nine"]


def _edit(build: Path, tmp_path: Path, change) -> Path:
    out = tmp_path / "edited"
    shutil.copytree(build, out)
    data = json.loads((out / NAME).read_text())
    change(data)
    data["digest"] = digest(data)  # a consistent manifest: only the names check can refuse it
    (out / NAME).write_text(json.dumps(data))
    return out


@pytest.mark.parametrize("names,words", [
    (["zero"] * 9, "model.class_names has 9 names but the model has 10 classes"),
    ([str(i) for i in range(10)], "reads as a class id"),
    (["a;b"] + ["x"] * 9, "never contain it"),
])
def test_reading_a_build_checks_its_names_against_the_architecture(bundled_build, tmp_path, names, words):
    b = _edit(bundled_build, tmp_path, lambda d: d["model"].update(class_names=names))
    with pytest.raises(DDTError) as e:
        read(b)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_a_build_without_names_reads_as_ids_only(bundled_build, tmp_path):
    b = _edit(bundled_build, tmp_path, lambda d: d["model"].pop("class_names"))
    m = read(b)
    assert m.class_names is None and m.doc.model.class_names is None
