"""Labels by name (class_names.py's rules L1-L3, A1, R1-R6): synonyms, case, whitespace, unknown names with the three closest,
ambiguous names with their ids, the id grammar unchanged, and the same rules through the CLI (generate, sample, check,
classes) and the Python API (label_ids), on the bundled digits build and on a build without names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ddt_export.class_names import ClassNames, imagenet_1k, label_ids, levenshtein, resolve, split_labels
from ddt_export.errors import DDTError
from ddt_export.manifest import NAME, digest

IMAGENET = ClassNames(tuple(imagenet_1k()))
DIGITS = ClassNames(("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"))


def ids(text, names=IMAGENET):
    return resolve(split_labels(text, "--labels"), names, "--labels")


def refused(text, names=IMAGENET) -> str:
    with pytest.raises(DDTError) as e:
        ids(text, names)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


# ----------------------------------------------------------------------------- the grammar


@pytest.mark.parametrize("text,want", [
    ("golden retriever;tabby;7", [207, 281, 7]),
    ("Golden Retriever", [207]),
    ("  GOLDEN retriever\t", [207]),
    ("tabby cat", [281]),  # any synonym
    ("Tinca tinca", [0]),  # the scientific name is a synonym too
    ("great white shark; man-eater ;white shark", [2, 2, 2]),
    ("7;tench", [7, 0]),
    ("1,7", [1, 7]),  # the id list, exactly as before names
    (" 1, 7 ", [1, 7]),
    ("007", [7]),
    ("-1", [-1]),  # an id (refused later by its range, as before)
    ("", []),
    ("jack-o'-lantern", [607]),
])
def test_names_and_ids(text, want):
    assert ids(text) == want


def test_the_digits_build_names():
    assert ids("seven;ZERO; 3 ", DIGITS) == [7, 0, 3]


@pytest.mark.parametrize("text,words", [
    ("1,,2", "has an empty entry"),
    ("1,", "has an empty entry"),
    ("tabby;;7", "has an empty entry"),
    ("tabby;", "has an empty entry"),
    ("9" * 41, "ASCII digits"),
    ("tabby;" + "9" * 41, "ASCII digits"),
])
def test_the_id_grammar_keeps_its_refusals(text, words):
    assert words in refused(text)


def test_an_unknown_name_shows_the_three_closest_classes_by_edit_distance_then_id():
    assert refused("golden retreiver") == ('--labels: no class is named "golden retreiver"; closest: golden retriever (207), '
                                          'Border terrier (182), Gordon setter (214)')
    assert refused("onne", DIGITS).endswith("closest: one (1), nine (9), five (5)")  # 1, 2 and 3 edits; the rest 4 or more
    assert refused("sevn", DIGITS).endswith("closest: seven (7), zero (0), five (5)")  # zero, five, six: 3 edits each, lower ids first


def test_closest_is_exactly_min_levenshtein_over_folded_synonyms_then_id():
    q = "tabby katt"
    d = [min(levenshtein(q, s.lower()) for s in ss) for ss in IMAGENET.synonyms]
    want = sorted(range(1000), key=lambda i: (d[i], i))[:3]
    assert IMAGENET.closest(q) == want and want[0] == 281


@pytest.mark.parametrize("a,b,d", [("", "", 0), ("", "abc", 3), ("kitten", "sitting", 3), ("flaw", "lawn", 2), ("é", "e", 1),
                                   ("abc", "abc", 0), ("ab", "ba", 2)])
def test_levenshtein(a, b, d):
    assert levenshtein(a, b) == levenshtein(b, a) == d


def test_an_ambiguous_name_lists_every_class_it_could_mean():
    assert refused("crane") == '--labels: "crane" names 2 classes: 134 (crane), 517 (crane); give the id instead'
    assert "638 (maillot), 639 (maillot)" in refused("Maillot")


def test_commas_inside_a_name_say_to_use_semicolons():
    assert 'separate labels with \';\' when any is a name' in refused("golden retriever, 7")
    assert "is not one class name" in refused("tench, Tinca tinca")


def test_case_folding_is_ascii_only_so_a_port_can_match_it():
    names = ClassNames(("Éclair", "zero"))
    assert ids("ÉCLAIR", names) == [0]
    with pytest.raises(DDTError, match="no class is named"):
        ids("éCLAIR", names)  # É and é differ: only A-Z fold


def test_a_very_long_name_is_refused_without_searching():
    assert "at most 200 characters (got 5000" in refused("x" * 5000)


def test_a_build_without_names_takes_ids_and_says_how_to_get_names():
    assert resolve(split_labels("1,7", "--labels"), None, "--labels") == [1, 7]
    msg = refused("tabby", None)
    assert msg.startswith("--labels must be comma-separated whole numbers") and "--class-names FILE" in msg


# ----------------------------------------------------------------------------- the API


def test_label_ids_takes_ints_and_strs():
    assert label_ids(["golden retriever", 207, np.int64(3), " 9 "], IMAGENET) == [207, 207, 3, 9]
    assert label_ids("tabby", IMAGENET) == [281] and label_ids(5, IMAGENET) == [5]
    for bad in ([1.5], [True], [None]):
        with pytest.raises(DDTError, match="class ids .whole numbers. or class names"):
            label_ids(bad, IMAGENET)
    with pytest.raises(DDTError, match="is not one class name"):
        label_ids(["tabby;7"], IMAGENET)  # one list entry is one label


def test_the_pipeline_resolves_names(bundled_build):
    from ddt_export import Pipeline

    pipe = Pipeline.load(bundled_build, "onnxruntime")
    assert pipe.label_ids(["seven", 3, "Zero"]) == [7, 3, 0]
    assert pipe.plan(["nine", 1], num_steps=2).labels == (9, 1)
    with pytest.raises(DDTError, match='no class is named "sevn"; closest: seven'):
        pipe.plan(["sevn"], num_steps=2)


# ----------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def builds(bundled_build, tmp_path_factory) -> Path:
    """The digits build (named) as `D`, and `OLD`: the same build as one made before names (no class_names field)."""
    root = tmp_path_factory.mktemp("names")
    shutil.copytree(bundled_build, root / "D")
    shutil.copytree(bundled_build, root / "OLD")
    data = json.loads((root / "OLD" / NAME).read_text())
    del data["model"]["class_names"]
    data["digest"] = digest(data)
    (root / "OLD" / NAME).write_text(json.dumps(data))
    return root


@pytest.fixture
def run(builds, monkeypatch, cli):
    """`ddt-export ARGS` in the folder holding D and OLD: (exit code, stdout, stderr)."""
    monkeypatch.chdir(builds)
    return lambda *args: (lambda r: (r.code, r.out, r.err))(cli(*args))


def test_generate_by_name_gives_the_same_samples_as_by_id(builds, run):
    for labels, out in (("seven;zero", "names.npy"), ("7,0", "ids.npy"), ("7;Zero", "mixed.npy")):
        code, _, err = run("generate", "D", "--labels", labels, "--steps", "3", "--save-latents", out)
        assert code == 0, err
    a, b, c = (np.load(builds / f) for f in ("names.npy", "ids.npy", "mixed.npy"))
    assert a.shape[0] == 2 and np.array_equal(a, b) and np.array_equal(a, c)


def test_an_old_build_without_names_still_generates_by_id_and_refuses_names_in_one_line(builds, run):
    for build in ("OLD", "D"):
        code, _, err = run("generate", build, "--labels", "7,0", "--steps", "3", "--save-latents", f"{build}.npy")
        assert code == 0, err
    assert np.array_equal(np.load(builds / "OLD.npy"), np.load(builds / "D.npy"))
    code, _, err = run("generate", "OLD", "--labels", "seven", "--steps", "3", "--save-latents", "x.npy")
    assert code == 2 and err.count("\n") == 1 and "has no class names" in err and not (builds / "x.npy").exists()
    code, _, err = run("classes", "OLD")
    assert code == 2 and "has no class names (its labels are ids 0 to 9)" in err


@pytest.mark.parametrize("labels,words", [
    ("sevn", 'no class is named "sevn"; closest: seven (7), zero (0), five (5)'),
    ("seven,one", "is not one class name"),
    ("seven;;one", "has an empty entry"),
])
def test_generate_refuses_bad_names_in_one_line_and_writes_nothing(builds, run, labels, words):
    code, out, err = run("generate", "D", "--labels", labels, "--steps", "3", "--out", "bad.png")
    assert code == 2 and err.startswith("error: --labels") and err.count("\n") == 1 and words in err, err
    assert not (builds / "bad.png").exists()


def test_generate_help_says_names_are_separated_by_semicolons(run):
    code, out, err = run("generate", "--help")
    assert code == 0 and "names never contain ';'" in " ".join(out.split())


def test_classes_lists_ids_and_names_and_searches(builds, run):
    code, out, _ = run("classes", "D")
    assert code == 0 and out.splitlines()[7] == "7\tseven" and len(out.splitlines()) == 10
    code, out, _ = run("classes", "D", "--search", "E")
    assert [line.split("\t")[0] for line in out.splitlines()] == ["0", "1", "3", "5", "7", "8", "9"]
    code, out, _ = run("classes", "D", "--search", "4")
    assert out == "4\tfour\n"
    code, out, err = run("classes", "D", "--search", "sevn")
    assert code == 2 and "closest: seven (7)" in err


def test_sample_takes_names_for_its_classes(builds, monkeypatch):
    from ddt_export.manifest import read
    from ddt_export.scale.run import parse_classes

    m, old = read(builds / "D"), read(builds / "OLD")
    assert parse_classes("seven;two", m) == (7, 2) and parse_classes(["one", 4], m) == (1, 4) and parse_classes("1,2", old) == (1, 2)
    with pytest.raises(DDTError, match="closest: seven"):
        parse_classes("sevn", m)
    with pytest.raises(DDTError, match="--classes takes `all` .*this build has no class names"):
        parse_classes("seven", old)


def test_check_runs_its_sampling_run_on_named_labels(builds, run):
    code, out, err = run("check", "D", "--labels", "seven;one", "--steps", "2", "--json")
    assert code == 0, err
    sampling = json.loads(out)["sampling_run"]
    assert sampling["labels"] == [7, 1] and sampling["batch"] == 2
    code, out, err = run("check", "D", "--labels", "seven", "--batch", "3", "--steps", "2")
    assert code == 2 and "--batch 3 but 1 --labels" in err
