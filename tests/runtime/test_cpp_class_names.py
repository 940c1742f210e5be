"""Class names on both sides (issue 23, the C++ part): runtime/src/class_names.cpp against ddt_export/class_names.py, whose
docstring holds the rules (N1-N2, L1-L3, A1, R1-R6) both implement.

The library through `ddt_runtime_probe`: `--labels` texts (tests/test_label_names.py's own cases, read from its parametrize
marks, plus the edges below) against ImageNet-1k's names, the digits model's, a hand-made set with shared synonyms and
non-ASCII names, and a build without names; the same ids or the same message, byte for byte. Lists (A1), the closest
classes (R6, the whole order of 1,000 classes), and names lines (N1-N2, with test_class_names.py's cases) likewise.

Then `ddt-run` end to end on copies of the bundled digits build (named; without names, as made before names existed;
with shared synonyms; with names that break the rules): the ids it samples (its --json `labels`) are the ones Python
resolves, and where Python's `ddt-export generate` refuses the input, ddt-run refuses it with the same line and exit 2,
numbers of 20 to 40 digits in --labels, --seed and --order included.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import tests.test_class_names as name_cases
import tests.test_label_names as label_cases
import tests.test_labels as id_cases
from ddt_export.class_names import ClassNames, check_names, imagenet_1k, label_ids, resolve, split_labels
from ddt_export.errors import DDTError
from ddt_export.manifest import NAME, digest, read
from ddt_export.pipeline import check_labels
from tests.runtime.conftest import run
from tests.runtime.test_cpp_labels import hexed, marked

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
HANDMADE = ["Éclair, eclair", "crane, Grus", "crane, derrick", "tabby, tabby cat", "café au lait, CAFE", "naïve, naive",
            "日本, nihon", "e, é", "x" * 200, "jack-o'-lantern, say \"boo\""]
NAME_SETS = {"imagenet": imagenet_1k(), "digits": DIGITS, "handmade": HANDMADE, "none": None}

EXTRA_TEXTS = [
    # names, synonyms, case, whitespace (ASCII whitespace is trimmed, nothing else is)
    "golden retriever", "GOLDEN RETRIEVER", "  golden retriever  ;\tTABBY CAT\t;\v7\f", "golden retriever\n", "golden  retriever",
    "\u00a0golden retriever", "seven", "Seven;SEVEN;seVen", "nine;8;seven", "SeVeN ; 3 ;zero", "tabby", "Tabby Cat", "tench;0",
    # shared synonyms: every id they could mean
    "crane", "CRANE", "Crane ", "crane;134", "maillot", "tank suit", "e", "E",
    # non-ASCII: compared as it is (only A-Z fold)
    "Éclair", "ÉCLAIR", "éclair", "ECLAIR", "é", "É", "日本", "NIHON", "naïve", "NAÏVE", "NAIVE", "café au lait", "CAFÉ AU LAIT",
    "Ⅶ", "\uff17", "\u0967", "tabby\u200b", "\ufefftabby",
    # unknown names: the three closest by edit distance, then id
    "golden retreiver", "onne", "sevn", "zer0", "nin", "eclaire", "x", "", "tabby;seven;crane", "q" * 30,
    # ids among names, and id lists as before names
    "7;tench", "1,7", " 1, 7 ", "007", "-1", "-0;tabby", "007;tabby", "+7;tabby", "1_0;tabby", "10", "1001", "1;2;3", "1 ;2",
    ",".join(str(i) for i in range(40)), "99999999999999999999", "9" * 40, "-" + "9" * 39, "tabby;" + "9" * 40,
    "9" * 40 + ";tabby", "1;" + "9" * 41, "9" * 20 + ";seven",
    # the grammar's refusals: empty entries, commas inside a name
    ";", " ; ", ";tabby", "tabby;", "tabby;;7", "1,", ",7", "1,,2", "tabby,", "golden retriever, 7", "1,7;tabby", "seven,one",
    "\t", " ", "\n", "1,\n7", "1\n", "\n1", "1,\v7", "tabby\n;7",
    # lengths in code points: at most 200 (the message quotes the first 40)
    "x" * 200, "x" * 201, "é" * 201, "é" * 50 + "x" * 160, "日" * 199 + "x", "x" * 5000,
    # quotes, backslashes and bytes that are not UTF-8 (Python reads them as lone surrogates)
    "it's", 'say "boo"', "jack-o'-lantern", "back\\slash", "\udcff\udcfe", "tabby\udcff", "\udcc3clair", "x\udce9\udc80",
]


def label_texts() -> list[str]:
    """tests/test_label_names.py's and tests/test_labels.py's own cases, then the edges above."""
    texts = marked(label_cases.test_names_and_ids) + marked(label_cases.test_the_id_grammar_keeps_its_refusals)
    texts += marked(id_cases.test_accepted) + marked(id_cases.test_refused)
    return list(dict.fromkeys(t for t in texts + EXTRA_TEXTS if t is not None))


def answer(compute) -> str:
    try:
        return "ok " + ",".join(str(i) for i in compute())
    except DDTError as e:
        return f"error: {e}"


def names_file(tmp_path: Path, key: str) -> str:
    """The probe's NAMES argument: a JSON file of the set's lines (hex path), or none."""
    if NAME_SETS[key] is None:
        return "none"
    path = tmp_path / f"{key}.json"
    if not path.exists():
        path.write_text(json.dumps(NAME_SETS[key]))
    return hexed(str(path))


def probe(runtime_build, commands: list[str]) -> list[str]:
    """ddt_runtime_probe's answers, bytes that are not UTF-8 read back as Python reads such an argument (surrogateescape)."""
    done = subprocess.run([str(runtime_build / "ddt_runtime_probe")], input="\n".join(commands).encode() + b"\n",
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode("utf-8", "surrogateescape").split("\n")[:-1]
    assert len(lines) == len(commands), lines[-3:]
    return lines


def names_of(key: str) -> ClassNames | None:
    return None if NAME_SETS[key] is None else ClassNames(tuple(NAME_SETS[key]))


# ----------------------------------------------------------------------------- the library, through the probe


@pytest.mark.parametrize("key", list(NAME_SETS))
def test_label_texts_resolve_alike(runtime_build, tmp_path, key):
    texts = label_texts()
    assert len(texts) >= 120
    names = names_of(key)
    cpp = probe(runtime_build, [f"labels {names_file(tmp_path, key)} {hexed(t)}" for t in texts])
    py = [answer(lambda: resolve(split_labels(t, "--labels"), names, "--labels")) for t in texts]
    wrong = [f"{t!r}\n  python: {p}\n  c++:    {c}" for t, p, c in zip(texts, py, cpp) if p != c]
    assert not wrong, "\n".join(wrong)
    assert sum(a.startswith("ok") for a in py) >= 15 and sum(a.startswith("error") for a in py) >= 40
    if key == "imagenet":  # every rule is exercised
        for rule in ("no class is named", "names 2 classes", "is not one class name", "has an empty entry", "at most 200 characters",
                     "must be a whole number of ASCII digits, e.g. 7", "must be comma-separated whole numbers"):
            assert any(rule in a for a in py), rule
    if key == "none":
        assert any("this build has no class names" in a for a in py)


LISTS = [["golden retriever", "207", " 9 ", "Tabby Cat"], ["tabby;7"], ["1,7"], ["9" * 41], ["9" * 40], ["crane"], [""], [" "],
         ["seven", "ZERO", "-3"], ["sevn"], ["x" * 201], ["Éclair", "e"], ["\t7\n"], ["+7"], []]


@pytest.mark.parametrize("key", list(NAME_SETS))
def test_label_lists_resolve_alike(runtime_build, tmp_path, key):
    """A1: each element of a list is one label (Pipeline::label_ids against Pipeline.label_ids), in turn."""
    names = names_of(key)
    cpp = probe(runtime_build, [f"labellist {names_file(tmp_path, key)} {hexed(json.dumps(items))}" for items in LISTS])
    py = [answer(lambda: label_ids(items, names, "labels")) for items in LISTS]
    wrong = [f"{items!r}\n  python: {p}\n  c++:    {c}" for items, p, c in zip(LISTS, py, cpp) if p != c]
    assert not wrong, "\n".join(wrong)


def test_the_closest_classes_are_ordered_alike(runtime_build, tmp_path):
    """R6 on all 1,000 ImageNet classes: the whole order (edit distance, then id), not only the first three."""
    names = names_of("imagenet")
    queries = ["golden retreiver", "tabby katt", "crane", "", "x", "é", "日本", "SHARK", "a" * 60, "Tinca  tinca"]
    cpp = probe(runtime_build, [f"closest {names_file(tmp_path, 'imagenet')} {hexed(q)} 1000" for q in queries])
    for q, c in zip(queries, cpp):
        assert c == ",".join(str(i) for i in names.closest(q, 1000)), q


BAD_LINES = [
    ["zero", "  one ,uno  "], ["a" * 200, "b"], ["a" * 201, "b"], ["é" * 201, "b"], ["zero", "one\t, uno"], ["zero", "tab\there"],
    ["zero", "del\x7f"], ["zero", "nul\x00"], ["zero", "-0"], ["zero", "0x1"], ["zero", "\uff17"], ["zero", "one;"], ["zero", ","],
    ["zero", " "], ["zero", "it's, 7"], ["zero", "é" * 70 + ", 7"], ["zero", 'say "hi", 12'], ["zero", "\u00a0"], ["日本", "é"],
]


def test_names_lines_are_checked_alike(runtime_build, tmp_path):
    """N1-N2 (check_class_names against check_names): test_class_names.py's cases of string lists, then the edges above."""
    cases = [c for c in marked(name_cases.test_names_that_break_the_rules_are_refused_in_one_line)
             if isinstance(c, list) and all(isinstance(n, str) for n in c)] + BAD_LINES
    commands = []
    for i, lines in enumerate(cases):
        (tmp_path / f"lines{i}.json").write_text(json.dumps(lines))
        commands.append(f"classnames 2 {hexed(str(tmp_path / f'lines{i}.json'))}")
    py = [answer(lambda: [json.dumps(check_names(lines, 2, "NAMES"), separators=(",", ":"))]) for lines in cases]
    wrong = [f"{lines!r}\n  python: {p}\n  c++:    {c}" for lines, p, c in zip(cases, py, probe(runtime_build, commands)) if p != c]
    assert not wrong, "\n".join(wrong)
    assert sum(a.startswith("ok") for a in py) >= 3 and sum(a.startswith("error") for a in py) >= 15


# ----------------------------------------------------------------------------- ddt-run against ddt-export generate


def restamped(build: Path, edit) -> None:
    """The build's manifest edited (edit(data) changes it in place) and its digest stamped again, as a build would."""
    data = json.loads((build / NAME).read_text())
    edit(data["model"])
    data["digest"] = digest(data)
    (build / NAME).write_text(json.dumps(data, indent=2))


@pytest.fixture(scope="module")
def builds(bundled_build, tmp_path_factory) -> Path:
    """Copies of the bundled digits build: D (named), OLD (made before names: no class_names), AMB (shared and non-ASCII
    synonyms), and three whose names break the rules: COUNT (9 names), ID (a name that is an id), TYPE (a number)."""
    root = tmp_path_factory.mktemp("class_names")
    edits = {
        "D": lambda m: None,
        "OLD": lambda m: m.pop("class_names"),
        "AMB": lambda m: m.update(class_names=["zero, nought, o", "one, o", "two", "three", "four", "five", "six", "seven, Sept",
                                               "eight", "nine, neuf, Neun, ÑUEVE"]),
        "COUNT": lambda m: m.update(class_names=DIGITS[:9]),
        "ID": lambda m: m.update(class_names=DIGITS[:7] + ["seven, 7"] + DIGITS[8:]),
        "TYPE": lambda m: m.update(class_names=DIGITS[:3] + [3] + DIGITS[4:]),
    }
    for name, edit in edits.items():
        shutil.copytree(bundled_build, root / name)
        restamped(root / name, edit)
    return root


FAST = ("--steps", "1")
E2E = [
    ("D", "seven;ZERO; 3 "), ("D", "Seven"), ("D", "1,7"), ("D", "7;Zero"), ("D", "10"), ("D", "nine;10;one"),
    ("D", "sevn"), ("D", "seven,one"), ("D", "seven;;one"), ("D", "tabby;7"), ("D", "12"), ("D", "seven;12"), ("D", ""), ("D", " "),
    ("D", "x" * 201), ("D", "9" * 41), ("D", "tabby;" + "9" * 41), ("D", "99999999999999999999"), ("D", "9" * 40),
    ("D", "-" + "9" * 39), ("D", "1;" + "9" * 30), ("D", "seven;" + "9" * 25), ("D", "-1"),
    ("OLD", "7,0"), ("OLD", "7;0"), ("OLD", "seven"), ("OLD", "7;seven"), ("OLD", "99999999999999999999"),
    ("AMB", "o"), ("AMB", "O;7"), ("AMB", "Nought;sept"), ("AMB", "ÑUEVE"), ("AMB", "ñueve"), ("AMB", "neun"),
    ("COUNT", "1"), ("ID", "1"), ("TYPE", "seven"),
]


def python_ids(build: Path, text: str) -> list[int]:
    """What `ddt-export generate` samples for --labels TEXT: split_labels, resolve, check_labels (cli.generate, Pipeline.plan)."""
    m = read(build)
    return list(check_labels(resolve(split_labels(text, "--labels"), m.class_names, "--labels"), m.arch, m.doc.model.null_class))


@pytest.mark.parametrize("build,text", E2E, ids=[f"{b}-{t[:24]!r}" for b, t in E2E])
def test_ddt_run_reads_labels_as_generate_does(builds, ddt_run, cli, tmp_path, build, text):
    py = cli("generate", builds / build, "--labels", text, *FAST, "--save-latents", tmp_path / "py.npy")
    cpp = run([ddt_run, builds / build, "--labels", text, *FAST, "--threads", "1", "--inference-precision", "f32", "--json",
               "--save-latents", tmp_path / "cpp.npy"])
    assert cpp.returncode == py.code, (cpp.stderr, py.err)
    if py.code == 0:
        assert json.loads(cpp.stdout)["labels"] == python_ids(builds / build, text)
        return
    assert py.code == 2 and py.err.count("\n") == 1 and py.err.startswith("error: ")
    assert cpp.stderr == py.err and cpp.stdout == "" and not (tmp_path / "cpp.npy").exists()


def test_names_sample_what_their_ids_sample(builds, ddt_run, tmp_path):
    """The same latents, bit for bit, for labels given by name, by id and mixed (ddt-run, OpenVINO f32, one thread)."""
    outs = []
    for i, labels in enumerate(("seven;zero;Nine", "7,0,9", "7;Zero;9")):
        r = run([ddt_run, builds / "D", "--labels", labels, "--steps", "3", "--threads", "1", "--inference-precision", "f32",
                 "--save-latents", tmp_path / f"{i}.npy"])
        assert r.returncode == 0, r.stderr
        outs.append(np.load(tmp_path / f"{i}.npy"))
    assert outs[0].shape[0] == 3 and np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])


LONG_NUMBERS = [
    ("--seed", "9" * 20), ("--seed", "1" + "0" * 39), ("--seed", "-" + "9" * 39), ("--seed", "9" * 41), ("--seed", "0" * 39 + "1"),
    ("--sampler", "adams", "--order", "9" * 20), ("--sampler", "adams", "--order", "-" + "9" * 39),
    ("--order", "1" + "0" * 39), ("--sampler", "heun", "--order", "9" * 30),
    ("--timeshift", "0", "--sampler", "adams", "--order", "9" * 25), ("--sampler", "adams", "--order", "0" * 30 + "3"),
]


@pytest.mark.parametrize("args", LONG_NUMBERS, ids=lambda a: " ".join(a)[:40])
def test_numbers_of_20_to_40_digits_get_pythons_message(builds, ddt_run, cli, tmp_path, args):
    """Past 64 bits, up to labels.py's 40 characters: Python reads any whole number and names it in its range message."""
    py = cli("generate", builds / "D", "--labels", "1", *FAST, *args, "--save-latents", tmp_path / "py.npy")
    cpp = run([ddt_run, builds / "D", "--labels", "1", *FAST, "--threads", "1", "--inference-precision", "f32", *args,
               "--save-latents", tmp_path / "cpp.npy"])
    assert cpp.returncode == py.code, (cpp.stderr, py.err)
    if py.code != 0:
        assert cpp.stderr == py.err and py.err.count("\n") == 1
