"""How far one result is from another: the relative error every check in ddt-export reports."""

from __future__ import annotations

import math

import numpy as np


def rel_error(got, want) -> float:
    """max |got - want| / max |want|: the build check's measure, also used by check, bench and tests."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.abs(got - want).max() / max(float(np.abs(want).max()), 1e-12))


def error_report(got, want) -> dict:
    """max abs / max rel / relative L2 error, whether `got` is finite, and its largest finite magnitude."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    finite = bool(np.isfinite(got).all())
    diff = np.abs(got - want) if finite else np.full_like(want, np.inf)
    return {
        "max_abs_error": float(diff.max()),
        "max_rel_error": float(diff.max()) / max(float(np.abs(want).max()), 1e-12),
        "rel_l2_error": float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-12)) if finite else math.inf,
        "finite": finite,
        "max_abs_output": float(np.nanmax(np.abs(np.where(np.isfinite(got), got, np.nan)))) if np.isfinite(got).any() else math.nan,
    }
