"""The one grammar of decimal numbers on every command line (--cfg, --timeshift, --sharing-ratio, --interval, --ratios, ...),
the float side of labels.py's integer grammar (CLI-neutral: ddt-bench uses it too).

A number is ASCII: an optional `-`, digits with an optional fraction (`0.75`, `1.`, `.5`), and an optional exponent
(`1e-3`, `1E+30`: Python prints large floats that way, so a value copied from a message reads back). Python's float()
reads more, and none of it is a number here: `1_0` (=10), full-width and other Unicode digits, `+1`, spaces inside.
`inf`, `nan` and values float64 cannot hold (`1e400`) are refused as not finite, in ddt-run's words: no option documents
them, and every value goes into the sampler's float32 settings, a ratio or a resource count, where they mean nothing.
"""

from __future__ import annotations

import math
import re

from .errors import DDTError

DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?", re.ASCII)
NON_FINITE = re.compile(r"[-+]?(?:inf|infinity|nan)", re.ASCII | re.IGNORECASE)  # float()'s spellings, named as such


def _value(entry: str) -> float | None:
    """A trimmed entry's value (inf or nan where it is not finite), or None where it is not in the grammar."""
    if NON_FINITE.fullmatch(entry):
        return math.nan
    return float(entry) if DECIMAL.fullmatch(entry) else None  # float() gives inf past float64 (1e400)


def decimal(text: str, what: str, example: str = "0.5") -> float:
    """One finite number in the grammar above, or a DDTError naming `what`."""
    value = _value(text.strip(" \t"))
    if value is None:
        raise DDTError(f"{what} must be a decimal number of ASCII digits, e.g. {example} (got {text!r})")
    if not math.isfinite(value):
        raise DDTError(f"{what} must be a finite number (got {text!r})")
    return value


def decimal_list(text: str | None, what: str, example: str = "0,0.5") -> list[float] | None:
    """Comma-separated numbers (None stays None, "" is the empty list); an empty entry is refused, as in whole_list."""
    if text is None:
        return None
    if text.strip(" \t") == "":
        return []
    entries = [e.strip(" \t") for e in text.split(",")]
    if "" in entries:
        raise DDTError(f"{what} has an empty entry (got {text!r}); give comma-separated numbers, e.g. {example}")
    values = [_value(e) for e in entries]
    if None in values:
        raise DDTError(f"{what} must be comma-separated numbers of ASCII digits, e.g. {example} (got {text!r})")
    if not all(math.isfinite(v) for v in values):
        raise DDTError(f"{what} must be finite numbers, e.g. {example} (got {text!r})")
    return values


def decimal_parser(what: str, example: str = "0.5"):
    """A typer `parser=` for a float option, read by this grammar (click's and pydantic's float take `1_0`, full-width
    digits and nan); the option's default, already a number, passes through."""
    def number(text):
        return text if isinstance(text, (int, float)) and not isinstance(text, bool) else decimal(text, what, example)

    number.__name__ = "float"  # typer < 0.29 names the option's type after the parser in --help: FLOAT, as click's float
    return number
