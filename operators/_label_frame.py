"""Label features of a whole frame at once: sorts and binary searches instead of a replay.

Every question a label feature asks is "which labels of group G became known before
time t?". Labels are sorted once by ``(group, known_at, row)`` under one int64 key
``group * stride + (known_at - base)``; a row's answer is then one ``searchsorted`` of
``group * stride + (t - base)``, and running sums / maxima over the sorted labels turn
positions into counts, shares and latest-fraud times. The semantics (and the equality
with the incremental :class:`operators.label_features.KnownLabels`) are documented in
:mod:`operators.label_features`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import pandas as pd

from operators.exceptions import FeatureInputError
from operators.velocity._constants import NEVER, SECOND_MS

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["frame_label_features"]

_Number = TypeVar("_Number", np.int64, np.float64)

_REQUIRED = ("tx_id", "user_id", "merchant_id", "event_time", "label")
_TEXT_LABELS: dict[object, float] = {"fraud": 1.0, "legit": 0.0, 1: 1.0, 0: 0.0}
_KEY_LIMIT = 2**62


def frame_label_features(
    frame: pd.DataFrame,
    *,
    label_delay_ms: int,
    run_gap_ms: int,
    window_widths_ms: Sequence[int],
    width: int,
) -> NDArray[np.float64]:
    """See :func:`operators.label_features.label_features_for_frame`."""
    missing = [name for name in _REQUIRED if name not in frame.columns]
    if missing:
        raise FeatureInputError(f"frame lacks columns {missing} (has {list(frame.columns)})")
    if len(frame) == 0:
        return np.empty((0, width), dtype=np.float64)
    tx_codes, _ = pd.factorize(frame["tx_id"])
    if (tx_codes < 0).any():
        raise FeatureInputError("tx_id: missing values")
    first = ~pd.Series(tx_codes).duplicated().to_numpy()
    compact = frame if first.all() else frame.loc[first]
    rows = _compute(compact, label_delay_ms, run_gap_ms, tuple(window_widths_ms), width)
    if compact is frame:
        return rows
    _, first_row = np.unique(tx_codes, return_index=True)
    position = np.cumsum(first) - 1  # a first occurrence's row in ``compact``
    repeated: NDArray[np.float64] = rows[position[first_row[tx_codes]]]
    return repeated


class _KnownIndex:
    """Labels sorted by (group, known_at, row), and the rows asking about them.

    Queries are searched in sorted order (numpy's binary search narrows from the previous
    answer when its needles ascend, several times faster than random needles) and the
    answers scattered back to row order.
    """

    __slots__ = ("base", "group_start", "groups", "keys", "order", "queries", "query_order")

    def __init__(
        self,
        label_groups: NDArray[np.int64],
        known: NDArray[np.int64],
        query_groups: NDArray[np.int64],
        query_times: NDArray[np.int64],
        n_groups: int,
        span: tuple[int, int],
    ) -> None:
        base, stride = span
        if n_groups * stride >= _KEY_LIMIT:
            raise FeatureInputError(
                f"{n_groups} keys over a {stride} ms span overflow the int64 sort key"
            )
        keys = label_groups * stride + (known - base)
        self.order = np.argsort(keys, kind="stable")
        self.keys = keys[self.order]
        self.groups = label_groups[self.order]
        counts = np.bincount(label_groups, minlength=n_groups)
        self.group_start = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
        queries = query_groups * stride + (query_times - base)
        self.query_order = np.argsort(queries, kind="stable")
        self.queries = queries[self.query_order]

    def known_before(self, lookback_ms: int = 0) -> NDArray[np.intp]:
        """Per row, the sorted position just past its group's labels known before a time.

        The time is the row's event time minus ``lookback_ms``; with no such label the
        position is the group's start.
        """
        positions = np.empty(self.queries.shape, dtype=np.intp)
        positions[self.query_order] = np.searchsorted(
            self.keys, self.queries - lookback_ms, side="left"
        )
        return positions

    def latest(self, values: NDArray[_Number]) -> NDArray[_Number]:
        """Running max per group of ``values`` (given in sorted order), inclusive."""
        grouped = pd.Series(values).groupby(self.groups, sort=False).cummax()
        running: NDArray[_Number] = grouped.to_numpy(dtype=values.dtype)
        return running


def _compute(
    frame: pd.DataFrame, delay: int, run_gap: int, widths: tuple[int, ...], width: int
) -> NDArray[np.float64]:
    at = _epoch_ms(frame["event_time"])
    users, n_users = _codes(frame["user_id"], "user_id")
    merchants, n_merchants = _codes(frame["merchant_id"], "merchant_id")
    fraud = _fraud_flags(frame["label"])
    known = at + delay
    base = int(at.min()) - max(widths, default=0) - 1
    span = (base, max(int(at.max()), int(known.max())) - base + 1)
    out = np.empty((width, len(at)), dtype=np.float64)  # one contiguous row per feature
    column = iter(range(width))

    labelled = fraud >= 0
    index = _KnownIndex(merchants[labelled], known[labelled], merchants, at, n_merchants, span)
    flags = fraud[labelled][index.order]
    events = at[labelled][index.order]
    fraud_prefix = np.concatenate(([0], np.cumsum(flags)))
    end = index.known_before()
    for window in widths:
        start = index.known_before(window)
        labels = end - start
        out[next(column)] = labels
        out[next(column)] = _ratio(fraud_prefix[end] - fraud_prefix[start], labels)
    has_labels = end > index.group_start[merchants]
    last = end - 1
    latest_fraud = index.latest(np.where(flags == 1, events, NEVER))
    out[next(column)] = _seconds_since(at, _pick(latest_fraud, last, has_labels, NEVER))
    run_frauds, run_labels, run_start = _fraud_runs(
        index, flags, events, latest_fraud, fraud_prefix, run_gap
    )
    run_frauds_now = _pick(run_frauds, last, has_labels, 0)
    out[next(column)] = _ratio(run_frauds_now, _pick(run_labels, last, has_labels, 0))
    out[next(column)] = run_frauds_now
    out[next(column)] = _seconds_since(at, _pick(run_start, last, has_labels, NEVER))

    frauds_only = fraud == 1
    user_index = _KnownIndex(users[frauds_only], known[frauds_only], users, at, n_users, span)
    user_end = user_index.known_before()
    user_frauds = user_end - user_index.group_start[users]
    user_latest = user_index.latest(at[frauds_only][user_index.order])
    out[next(column)] = user_frauds
    out[next(column)] = _seconds_since(at, _pick(user_latest, user_end - 1, user_frauds > 0, NEVER))
    legit_only = fraud == 0
    legit_index = _KnownIndex(users[legit_only], known[legit_only], users, at, n_users, span)
    legit_end = legit_index.known_before()
    legit = legit_end - legit_index.group_start[users]
    out[next(column)] = legit
    amounts = _amounts(frame)
    spent = np.nan_to_num(amounts[legit_only][legit_index.order], nan=-np.inf)
    ceiling = np.full(len(at), -np.inf)
    has_legit = legit > 0
    ceiling[has_legit] = legit_index.latest(spent)[legit_end[has_legit] - 1]
    out[next(column)] = _ratio(amounts, ceiling)

    pairs, n_pairs = _codes(pd.Series(users * n_merchants + merchants), "pair")
    out[next(column)] = _earlier_in_group(pairs, n_pairs)
    pair_index = _KnownIndex(pairs[frauds_only], known[frauds_only], pairs, at, n_pairs, span)
    out[next(column)] = pair_index.known_before() - pair_index.group_start[pairs]
    if next(column, None) is not None:
        raise FeatureInputError(f"fewer label features computed than the {width} expected")
    features: NDArray[np.float64] = out.T
    return features


def _earlier_in_group(groups: NDArray[np.int64], n_groups: int) -> NDArray[np.int64]:
    """Per row: how many earlier rows (frame order) share its group."""
    order = np.argsort(groups, kind="stable")
    starts = np.concatenate(([0], np.cumsum(np.bincount(groups, minlength=n_groups))[:-1]))
    earlier = np.empty(groups.shape, dtype=np.int64)
    earlier[order] = np.arange(groups.size) - starts[groups[order]]
    return earlier


def _fraud_runs(
    index: _KnownIndex,
    flags: NDArray[np.int8],
    events: NDArray[np.int64],
    latest_fraud: NDArray[np.int64],
    fraud_prefix: NDArray[np.int64],
    run_gap: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Frauds, labels and start event time of the run current after each sorted label.

    Before the group's first fraud: 0 frauds, 0 labels, start ``NEVER``.
    """
    count = flags.size
    previous = np.full(count, NEVER, dtype=np.int64)  # latest fraud known before this label
    if count > 1:
        same = index.groups[1:] == index.groups[:-1]
        previous[1:] = np.where(same, latest_fraud[:-1], NEVER)
    new_run = (flags == 1) & (events - previous > run_gap)
    position = np.arange(count, dtype=np.int64)
    start = np.maximum.accumulate(np.where(new_run, position, -1)) if count else position
    valid = start >= index.group_start[index.groups]
    safe_start = np.maximum(start, 0)
    run_labels = np.where(valid, position - safe_start + 1, 0)
    run_frauds = np.where(valid, fraud_prefix[position + 1] - fraud_prefix[safe_start], 0)
    run_start = np.where(valid, events[safe_start] if count else NEVER, NEVER)
    return run_frauds, run_labels, run_start


def _pick(
    values: NDArray[np.int64], positions: NDArray[np.intp], valid: NDArray[np.bool_], default: int
) -> NDArray[np.int64]:
    """``values[positions]`` where ``valid``, else ``default`` (also when ``values`` is empty)."""
    picked = np.full(positions.shape, default, dtype=np.int64)
    picked[valid] = values[positions[valid]]
    return picked


def _ratio(
    numerator: NDArray[np.int64] | NDArray[np.float64],
    denominator: NDArray[np.int64] | NDArray[np.float64],
) -> NDArray[np.float64]:
    """``numerator / denominator`` where the denominator is positive, NaN elsewhere."""
    shares = np.full(denominator.shape, np.nan)
    np.divide(numerator, denominator, out=shares, where=denominator > 0)
    return shares


def _amounts(frame: pd.DataFrame) -> NDArray[np.float64]:
    """Amounts as floats, NaN where missing or unparsable (or without an amount column)."""
    if "amount" not in frame.columns:
        return np.full(len(frame), np.nan)
    values: NDArray[np.float64] = pd.to_numeric(frame["amount"], errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    return values


def _seconds_since(at: NDArray[np.int64], then: NDArray[np.int64]) -> NDArray[np.float64]:
    seconds = (at - then) / SECOND_MS
    seconds[then == NEVER] = np.nan
    return seconds


def _epoch_ms(column: pd.Series) -> NDArray[np.int64]:
    if not isinstance(column.dtype, pd.DatetimeTZDtype):
        raise FeatureInputError(f"event_time must be tz-aware datetimes, got {column.dtype}")
    if column.isna().any():
        raise FeatureInputError("event_time: missing values")
    utc = column.dt.tz_convert("UTC").dt.tz_localize(None)
    millis: NDArray[np.int64] = utc.to_numpy(dtype="datetime64[ms]").astype(np.int64)
    return millis


def _codes(column: pd.Series, name: str) -> tuple[NDArray[np.int64], int]:
    codes, uniques = pd.factorize(column)
    if (codes < 0).any():
        raise FeatureInputError(f"{name}: missing values")
    return codes.astype(np.int64), len(uniques)


def _fraud_flags(column: pd.Series) -> NDArray[np.int8]:
    """1 fraud, 0 legit, -1 unlabelled; anything else is refused."""
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        mapped = column.map(_TEXT_LABELS)
        bad = mapped.isna() & column.notna()
        if bad.any():
            raise FeatureInputError(
                f"label: not 1/0 or fraud/legit: {column[bad].head(3).tolist()}"
            )
        values = mapped.to_numpy(dtype=np.float64, na_value=np.nan)
    known = ~np.isnan(values)
    if not np.isin(values[known], (0.0, 1.0)).all():
        raise FeatureInputError("label: values must be 1 (fraud) or 0 (legit)")
    flags = np.full(values.shape, -1, dtype=np.int8)
    flags[known] = values[known].astype(np.int8)
    return flags
