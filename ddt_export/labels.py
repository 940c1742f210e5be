"""The one integer grammar for class labels, step lists and seeds on every command line (CLI-neutral: ddt-bench can use it).

A whole number is ASCII digits, optionally after one `-` (so a negative label is refused by its
range check, which names the valid range): no underscores (Python's int() reads `1_0` as 10), no
full-width or other Unicode digits, no `+`, no spaces inside. A list is such numbers separated by
commas; spaces around an entry are allowed, an empty entry (`1,,2`, `1,`) is not. A seed is a
whole number in [0, 2^64 - 1], the range torch's and numpy's generators take without wrapping
(torch reads -1 as 2^64 - 1, so negative seeds are refused rather than aliased).
"""

from __future__ import annotations

import operator
import re

from .errors import DDTError

WHOLE = re.compile(r"-?[0-9]+", re.ASCII)
MAX_SEED = (1 << 64) - 1
MAX_DIGITS = 40  # far past any label, step or 64-bit seed: a 10,000-digit number is not parsed


def whole(text: str, what: str, example: str = "1") -> int:
    """One whole number in the grammar above, or a DDTError naming `what`."""
    entry = text.strip(" \t")
    if not WHOLE.fullmatch(entry) or len(entry) > MAX_DIGITS:
        raise DDTError(f"{what} must be a whole number of ASCII digits, e.g. {example} (got {text!r})")
    return int(entry)


def whole_list(text: str | None, what: str, example: str = "1,7") -> list[int] | None:
    """Comma-separated whole numbers (None stays None, "" is the empty list); an empty entry is refused."""
    if text is None:
        return None
    if text.strip(" \t") == "":
        return []
    entries = text.split(",")
    if any(e.strip(" \t") == "" for e in entries):
        raise DDTError(f"{what} has an empty entry (got {text!r}); give comma-separated whole numbers, e.g. {example}")
    try:
        return [whole(e, what, example) for e in entries]
    except DDTError:
        raise DDTError(f"{what} must be comma-separated whole numbers of ASCII digits, e.g. {example} (got {text!r})") from None


def check_seed(seed, what: str = "--seed") -> int:
    """A seed in [0, 2^64 - 1] (an int, or text in the grammar)."""
    if isinstance(seed, str):
        seed = whole(seed, what, "0")
    elif not isinstance(seed, bool) and hasattr(seed, "__index__"):
        seed = operator.index(seed)  # numpy integers
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise DDTError(f"{what} must be a whole number from 0 to 2^64 - 1 = {MAX_SEED} (got {seed!r})")
    return seed


def whole_parser(what: str, example: str = "1"):
    """A typer `parser=` for a whole-number option, read by this grammar (click's int takes `1_0` and full-width digits);
    the option's default, already an int, passes through. The float options' counterpart is decimals.decimal_parser."""
    def integer(text):
        return text if isinstance(text, int) and not isinstance(text, bool) else whole(text, what, example)

    return integer  # typer < 0.29 names the option's type after the parser in --help: INTEGER, as click's int
