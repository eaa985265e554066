"""A batch checked once and shared by every rule, so rules only do numpy work.

Conversions (ints to float64, unicode arrays to object) and the "is this string
present" masks happen here at most once per column and batch, not once per rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from operators.exceptions import BatchError

__all__ = ["Batch", "Frame"]

#: What callers hand in: column name -> 1-D array (float64 with NaN, or object str/None).
Batch = Mapping[str, Any]


class Frame:
    """The columns one evaluation needs, validated, plus lazily computed presence masks."""

    __slots__ = ("_numeric", "_present", "_strings", "n_rows")

    def __init__(
        self,
        numeric: dict[str, NDArray[np.float64]],
        strings: dict[str, NDArray[np.object_]],
        n_rows: int,
    ) -> None:
        self._numeric = numeric
        self._strings = strings
        self._present: dict[str, NDArray[np.bool_]] = {}
        self.n_rows = n_rows

    @classmethod
    def from_batch(
        cls,
        batch: Batch,
        numeric: Iterable[str],
        strings: Iterable[str],
        n_rows: int | None = None,
    ) -> Frame:
        """Check and convert the needed columns; a wiring mistake raises BatchError."""
        numeric = tuple(numeric)
        strings = tuple(strings)
        missing = sorted(name for name in (*numeric, *strings) if name not in batch)
        if missing:
            raise BatchError(f"batch lacks columns needed by the rules: {missing}")
        if n_rows is None:
            n_rows = _infer_rows(batch, (*numeric, *strings))
        return cls(
            {name: _numeric_column(name, batch[name], n_rows) for name in numeric},
            {name: _string_column(name, batch[name], n_rows) for name in strings},
            n_rows,
        )

    def num(self, name: str) -> NDArray[np.float64]:
        """Return a numeric column: float64, NaN for missing."""
        return self._numeric[name]

    def text(self, name: str) -> NDArray[np.object_]:
        """Return a string column as an object array (None for missing)."""
        return self._strings[name]

    def present(self, name: str) -> NDArray[np.bool_]:
        """Return where a string column holds a real string (not None, not a float NaN)."""
        mask = self._present.get(name)
        if mask is None:
            column = self._strings[name]
            # x == x is False only for NaN; None == None is True, hence the second test.
            mask = np.asarray(column == column, dtype=np.bool_) & np.not_equal(
                column, cast(Any, None)
            )
            self._present[name] = mask
        return mask


def _infer_rows(batch: Batch, needed: tuple[str, ...]) -> int:
    names = needed or tuple(batch)
    if not names:
        raise BatchError("cannot tell the batch size: the batch is empty and n_rows was not given")
    shape = np.shape(batch[names[0]])
    if len(shape) != 1:
        raise BatchError(f"column {names[0]!r} has shape {shape}, expected a 1-D array")
    return int(shape[0])


def _numeric_column(name: str, values: Any, n_rows: int) -> NDArray[np.float64]:
    if isinstance(values, np.ndarray) and values.dtype == np.float64:
        column: NDArray[np.float64] = values
    else:
        try:
            column = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise BatchError(f"column {name!r} must be numeric (float64, NaN for missing)") from exc
    _check_shape(name, column, n_rows)
    return column


def _string_column(name: str, values: Any, n_rows: int) -> NDArray[np.object_]:
    if isinstance(values, np.ndarray) and values.dtype == np.object_:
        column: NDArray[np.object_] = values
    else:
        column = np.asarray(values, dtype=np.object_)
    _check_shape(name, column, n_rows)
    return column


def _check_shape(name: str, column: NDArray[Any], n_rows: int) -> None:
    if column.ndim != 1 or column.shape[0] != n_rows:
        raise BatchError(
            f"column {name!r} has shape {column.shape}, expected ({n_rows},) like the batch"
        )
