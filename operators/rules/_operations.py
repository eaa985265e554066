"""The numpy building blocks the compiler wires together, with the missing-value rules.

Kept apart from the compiler so the semantics (NaN and None make a comparison False,
``!=`` and ``not in`` included) live in one short, easily reviewed place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from operators.rules._frame import Frame

__all__ = [
    "BoolFn",
    "NumFn",
    "PresentFn",
    "TextFn",
    "compare_numbers",
    "compare_text",
    "number_membership",
    "text_membership",
]

NumValue = NDArray[np.float64] | float
BoolValue = NDArray[np.bool_] | np.bool_ | bool
TextValue = NDArray[np.object_] | str
NumFn = Callable[[Frame], NumValue]
BoolFn = Callable[[Frame], BoolValue]
TextFn = Callable[[Frame], TextValue]
PresentFn = Callable[[Frame], NDArray[np.bool_]]

# Up to this many strings, "x in [...]" is a few vectorised == (about 12 us per 1,000
# rows each); beyond it one hash lookup per row is cheaper.
_SMALL_LIST = 3


def _not_equal(left: Any, right: Any) -> Any:
    # NaN != x must be False like every other comparison with a missing value; < and >
    # are both False for NaN, and for equal values (inf included).
    return np.logical_or(np.less(left, right), np.greater(left, right))


_NUMBER_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "==": np.equal,
    "!=": _not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


def compare_numbers(symbol: str, left: NumFn, right: NumFn) -> BoolFn:
    """One numeric comparison; NaN on either side gives False (IEEE does, except !=)."""
    compare = _NUMBER_COMPARISONS[symbol]
    return lambda frame: compare(left(frame), right(frame))


def compare_text(
    symbol: str,
    left: TextFn,
    left_present: PresentFn | None,
    right: TextFn,
    right_present: PresentFn | None,
) -> BoolFn:
    """Compare strings with == or !=; a missing string equals nothing and differs from nothing."""
    masks = tuple(mask for mask in (left_present, right_present) if mask is not None)
    if symbol == "==":
        if len(masks) < 2:
            # A literal side never equals None or NaN, so no mask is needed.
            return lambda frame: np.asarray(left(frame) == right(frame), dtype=np.bool_)
        return lambda frame: (
            np.asarray(left(frame) == right(frame), dtype=np.bool_)
            & masks[0](frame)
            & masks[1](frame)
        )
    return lambda frame: _all_present(
        np.asarray(left(frame) != right(frame), dtype=np.bool_), masks, frame
    )


def _all_present(
    result: NDArray[np.bool_], masks: tuple[PresentFn, ...], frame: Frame
) -> NDArray[np.bool_]:
    for mask in masks:
        result = result & mask(frame)
    return result


def number_membership(value: NumFn, items: Sequence[float], *, negate: bool) -> BoolFn:
    """``x in [numbers]``; NaN is in no list and, with ``not in``, gives False too."""
    choices = np.array(items, dtype=np.float64)
    if not negate:
        return lambda frame: np.isin(value(frame), choices)

    def not_in(frame: Frame) -> Any:
        values = value(frame)
        return np.logical_not(np.isin(values, choices)) & np.logical_not(np.isnan(values))

    return not_in


def text_membership(
    value: TextFn, present: PresentFn | None, items: Sequence[str], *, negate: bool
) -> BoolFn:
    """``s in ["a", "b"]``; None is in no list and, with ``not in``, gives False too."""
    contained = _text_contains(value, items)
    if not negate:
        return contained
    if present is None:
        return lambda frame: np.logical_not(contained(frame))
    return lambda frame: np.logical_not(contained(frame)) & present(frame)


def _text_contains(value: TextFn, items: Sequence[str]) -> BoolFn:
    choices = frozenset(items)
    if not choices:
        return lambda frame: False
    ordered = tuple(sorted(choices))
    if len(ordered) <= _SMALL_LIST:

        def few(frame: Frame) -> BoolValue:
            values = value(frame)
            if isinstance(values, str):
                return values in choices
            result = np.asarray(values == ordered[0], dtype=np.bool_)
            for item in ordered[1:]:
                result |= np.asarray(values == item, dtype=np.bool_)
            return result

        return few

    lookup = choices.__contains__

    def many(frame: Frame) -> BoolValue:
        values = value(frame)
        if isinstance(values, str):
            return values in choices
        return np.fromiter(map(lookup, values), dtype=np.bool_, count=values.shape[0])

    return many
