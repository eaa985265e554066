"""Validation of an online learner checkpoint before any of it is used.

A checkpoint comes back from disk after a restart; a truncated, hand-edited or foreign
one must stop the feedback service with a message naming the bad field, not quietly
produce a learner that predicts nonsense or crashes on its first label.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from models.exceptions import ModelFormatError

__all__ = ["CheckedState", "check_state", "count", "is_number", "number"]

_PREFIX = "online learner state"


@dataclass(frozen=True, slots=True)
class CheckedState:
    """The parts of a checkpoint, type- and range-checked, one entry per feature."""

    feature_names: tuple[str, ...]
    n_learned: int
    n_corrected: int
    impute: dict[str, tuple[float, float]]  # name -> (count, mean)
    scaler_counts: dict[str, int]
    scaler_means: dict[str, float]
    scaler_vars: dict[str, float]
    weights: dict[str, float]
    intercept: float
    optimizer_steps: int
    quality: Mapping[str, Any]


def check_state(state: Mapping[str, Any], format_version: int) -> CheckedState:
    """Check a checkpoint's layout, types and ranges; raise ModelFormatError on the first fault."""
    if not isinstance(state, Mapping):
        raise ModelFormatError(f"{_PREFIX} must be an object, got {type(state).__name__}")
    if state.get("format") != format_version:
        raise ModelFormatError(
            f"{_PREFIX}: format {state.get('format')!r}, this code reads {format_version}"
        )
    names = state.get("feature_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ModelFormatError(f"{_PREFIX}: feature_names must be a non-empty list of strings")
    feature_names = tuple(names)
    if len(set(feature_names)) != len(feature_names):
        raise ModelFormatError(f"{_PREFIX}: feature_names repeat a name")

    impute_table = _per_feature(state, "impute", feature_names)
    impute: dict[str, tuple[float, float]] = {}
    for name, entry in impute_table.items():
        if not isinstance(entry, Mapping):
            raise ModelFormatError(f"{_PREFIX}: impute.{name} must be an object")
        seen = count(entry.get("n"), f"impute.{name}.n")
        impute[name] = (seen, number(entry, "mean", f"impute.{name}."))

    scaler = state.get("scaler")
    if not isinstance(scaler, Mapping):
        raise ModelFormatError(f"{_PREFIX}: scaler must be an object")
    counts = _per_feature(scaler, "counts", feature_names, "scaler.")
    means = _per_feature(scaler, "means", feature_names, "scaler.")
    variances = _per_feature(scaler, "vars", feature_names, "scaler.")
    weights = _per_feature(state, "weights", feature_names)
    quality = state.get("quality")
    if not isinstance(quality, Mapping):
        raise ModelFormatError(f"{_PREFIX}: quality must be an object")

    scaler_vars = {n: number(variances, n, "scaler.vars.") for n in feature_names}
    if any(v < 0 for v in scaler_vars.values()):
        raise ModelFormatError(f"{_PREFIX}: scaler.vars must be >= 0")
    return CheckedState(
        feature_names=feature_names,
        n_learned=_integer(state.get("n_learned"), "n_learned"),
        n_corrected=_integer(state.get("n_corrected"), "n_corrected"),
        impute=impute,
        scaler_counts={n: _integer(counts[n], f"scaler.counts.{n}") for n in feature_names},
        scaler_means={n: number(means, n, "scaler.means.") for n in feature_names},
        scaler_vars=scaler_vars,
        weights={n: number(weights, n, "weights.") for n in feature_names},
        intercept=number(state, "intercept"),
        optimizer_steps=_integer(state.get("optimizer_steps"), "optimizer_steps"),
        quality=quality,
    )


def number(table: Mapping[str, Any], key: str, where: str = "") -> float:
    """``table[key]`` as a finite float, or ModelFormatError naming ``where + key``."""
    value = table.get(key)
    if not is_number(value):
        raise ModelFormatError(f"{_PREFIX}: {where}{key} must be a finite number, got {value!r}")
    return float(value)


def _per_feature(
    table: Mapping[str, Any], key: str, names: tuple[str, ...], where: str = ""
) -> Mapping[str, Any]:
    entries = table.get(key)
    if not isinstance(entries, Mapping) or set(entries) != set(names):
        raise ModelFormatError(f"{_PREFIX}: {where}{key} must have one entry per feature name")
    return entries


def count(value: object, where: str) -> float:
    """``value`` as a float count >= 0, or ModelFormatError naming ``where``."""
    if not is_number(value) or value < 0:
        raise ModelFormatError(f"{_PREFIX}: {where} must be a count >= 0, got {value!r}")
    return float(value)


def _integer(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ModelFormatError(f"{_PREFIX}: {where} must be an integer >= 0, got {value!r}")
    return value


def is_number(value: object) -> TypeGuard[float]:
    """True for a finite int or float (bools excluded): what JSON numbers may hold."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
