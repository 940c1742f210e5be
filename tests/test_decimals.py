"""decimals.py: the one grammar of decimal numbers on the command line, at its edges (the CLI rows are in
tests/cli/test_bad_input.py, which also runs every float option through it)."""

from __future__ import annotations

import pytest

from ddt_export.decimals import decimal, decimal_list, decimal_parser
from ddt_export.errors import DDTError


@pytest.mark.parametrize("text,want", [("0.75", 0.75), (".5", 0.5), ("1.", 1.0), ("4", 4.0), ("-1", -1.0), ("-0", 0.0),
                                       ("1e-3", 1e-3), ("1E+30", 1e30), ("1e39", 1e39), (" 2.5\t", 2.5), ("007", 7.0),
                                       ("1e-400", 0.0)])
def test_accepted(text, want):
    assert decimal(text, "--cfg") == want


@pytest.mark.parametrize("text", ["1_0", "1_0.5", "\uff14", "\u0661", "\u00b2", "+1", "0x1p2", "1e", "e3", ".", "-", "",
                                  "4 .0", "1,5", "1e3.0", "--1", "4\n", "\u00a04"])
def test_not_in_the_grammar(text):
    with pytest.raises(DDTError, match="--cfg must be a decimal number of ASCII digits"):
        decimal(text, "--cfg")


@pytest.mark.parametrize("text", ["nan", "NaN", "-nan", "inf", "-inf", "+inf", "Infinity", "-INFINITY", "1e400", "-1e309"])
def test_not_finite(text):
    """float() reads these; ddt-run's words refuse them (no option documents them)."""
    with pytest.raises(DDTError, match="--cfg must be a finite number"):
        decimal(text, "--cfg")


@pytest.mark.parametrize("text,want", [("0,0.5,0.75", [0.0, 0.5, 0.75]), (" 0 , .5 ", [0.0, 0.5]), ("", []), (None, None)])
def test_lists(text, want):
    assert decimal_list(text, "--ratios") == want


@pytest.mark.parametrize("text,words", [("0,,0.5", "--ratios has an empty entry"), ("0,", "--ratios has an empty entry"),
                                        ("0,0.7_5", "--ratios must be comma-separated numbers of ASCII digits"),
                                        ("0,nan", "--ratios must be finite numbers")])
def test_lists_refused(text, words):
    with pytest.raises(DDTError, match=words):
        decimal_list(text, "--ratios")


def test_the_parser_passes_defaults_through_and_reads_text():
    parse = decimal_parser("--cpus-per-worker", "1")
    assert parse(1.0) == 1.0 and parse(2) == 2 and parse("0.5") == 0.5
    with pytest.raises(DDTError, match="--cpus-per-worker must be a decimal number"):
        parse("1_0")
    assert parse.__name__ == "float"  # typer < 0.29 shows FLOAT in --help, as for click's float
