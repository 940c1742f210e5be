"""One integer grammar on both sides: the C++ runtime's ddt::whole_list and ddt::check_seed (what `ddt-run --labels`,
`--recompute` and `--seed` read with) against ddt_export/labels.py's whole_list and check_seed.

The table is tests/test_labels.py's own cases (read from its parametrize marks, so a case added there is asked of C++
too) plus the edges below; for each text both sides accept it with the same numbers or refuse it with the same
message. Texts go to `ddt_runtime_probe` as hex, so spaces, tabs, newlines and any UTF-8 arrive as they are.
"""

from __future__ import annotations

import pytest

import tests.test_labels as python_cases
from ddt_export.errors import DDTError
from ddt_export.labels import MAX_SEED, check_seed, whole_list
from tests.runtime.test_cpp_limits import probe


def marked(test, index: int = 0) -> list:
    """The values a tests/test_labels.py test is parametrized with (the first field of each case)."""
    mark = next(m for m in test.pytestmark if m.name == "parametrize")
    return [case[index] if isinstance(case, tuple) else case for case in mark.args[1]]


EXTRA_LISTS = [
    "\t1,\t7\t", " ", "\t", ",", " , ", "1, ,2", "-0", "-007", "--1", "-", "1-", "1 ,2", "10,11,1023", "9" * 40, "-" + "9" * 39,
    "-" + "9" * 40, "1" + "0" * 39, "1\r", "1\x00", "1\u00a0", "\u00a01", "1\u3000", "\u0967", "\U0001d7cf", "1\t\t,\t\t2",
    "1e0", "0b1", "1.", ".1", "+0", "1,2,", "1,,", "'1'", '"1"', "1;2", "1 ,", "२", "1\u200b", "\ufeff1", "1\u2028", "1\u00ad",
    "1\ue000", "1\x85", "1\\", "it's", "1\udcff", "\udc80\udc80",  # the last two: bytes that are not UTF-8, as Python reads them
]
EXTRA_SEEDS = [
    "0", "-0", " 0 ", "\t7\t", "007", "18446744073709551614", "18446744073709551615", "018446744073709551615",
    "18446744073709551616", "99999999999999999999", "9" * 40, "9" * 41, "-1", "-18446744073709551615", "", " ", "+1", "1_0",
    "1e3", "0x10", "\uff11", "1,2", "4294967296", "-0000",
]


def python_list(text: str) -> str:
    try:
        return "ok " + ",".join(str(n) for n in whole_list(text, "--labels"))
    except DDTError as e:
        return f"error: {e}"


def python_seed(text: str) -> str:
    try:
        return f"ok {check_seed(text)}"
    except DDTError as e:
        return f"error: {e}"


def hexed(text: str) -> str:
    """The text's bytes as an argument carries them (a lone surrogate is the byte surrogateescape read it from)."""
    return "x" + text.encode("utf-8", "surrogateescape").hex()


def disagreements(runtime_build, command: str, texts: list[str], python) -> list[str]:
    cpp = probe(runtime_build, [f"{command} {hexed(t)}" for t in texts])
    return [f"{t!r}\n  python: {p}\n  c++:    {c}" for t, c in zip(texts, cpp) if (p := python(t)) != c]


def test_label_lists_agree(runtime_build):
    texts = [t for t in marked(python_cases.test_accepted) + marked(python_cases.test_refused) if t is not None] + EXTRA_LISTS
    assert len(texts) >= 50
    wrong = disagreements(runtime_build, "whole_list", texts, python_list)
    assert not wrong, "\n".join(wrong)
    answers = [python_list(t) for t in texts]
    assert sum(a.startswith("ok") for a in answers) >= 10 and sum(a.startswith("error") for a in answers) >= 30
    for rule in ("has an empty entry", "must be comma-separated whole numbers of ASCII digits"):
        assert any(rule in a for a in answers), rule


def test_seeds_agree(runtime_build):
    as_text = [str(s) for s in marked(python_cases.test_seeds_in_range) + marked(python_cases.test_seeds_out_of_range_or_not_whole)
               if isinstance(s, (int, str)) and not isinstance(s, bool) or type(s).__module__ == "numpy"]
    texts = as_text + EXTRA_SEEDS
    assert str(MAX_SEED) in texts and str(MAX_SEED + 1) in texts and "-1" in texts
    wrong = disagreements(runtime_build, "seed", texts, python_seed)
    assert not wrong, "\n".join(wrong)
    answers = [python_seed(t) for t in texts]
    for rule in ("must be a whole number of ASCII digits", "from 0 to 2^64 - 1"):
        assert any(rule in a for a in answers), rule


@pytest.mark.parametrize("seed", ["0", str(MAX_SEED), "-0", "007"])
def test_ddt_run_takes_the_whole_seed_range(built, ddt_run, tmp_path, seed):
    """The seeds the grammar accepts run end to end (2^64 - 1 included), giving Python's noise."""
    import numpy as np

    from tests.runtime.conftest import run

    out = tmp_path / "lat.npy"
    r = run([ddt_run, built, "--labels", "1", "--seed", seed, "--steps", "1", "--threads", "1", "--inference-precision", "f32",
             "--save-latents", out])
    assert r.returncode == 0, r.stderr
    assert np.isfinite(np.load(out)).all()
