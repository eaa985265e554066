"""The model's feature vector, computed the one way training, backtests and serving share.

``FEATURE_NAMES`` is the model's input order. :class:`FeatureReplayer` pushes a stream of
events through per-user and per-merchant velocity states exactly as the dataflow does
(skip a repeated ``tx_id``, update the user, update the merchant, look up the merchant
risk), and :func:`features_for_frame` does it for a historical frame, fast enough to
featurise months of history for training. There is no second implementation of any
feature: a model cannot be trained on numbers production would not produce.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from operators.exceptions import FeatureInputError
from operators.velocity import (
    DEFAULT_LATENESS_MS,
    MERCHANT_FEATURES,
    USER_FEATURES,
    MerchantVelocity,
    RecentIds,
    UserVelocity,
    VelocityEvent,
)
from operators.velocity._constants import AMOUNT_SCALE, DAY_MS, NEVER

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["FEATURE_NAMES", "FeatureReplayer", "MerchantRisk", "Replay", "features_for_frame"]

#: The model's input order: user features, merchant features, then enrichment.
FEATURE_NAMES: tuple[str, ...] = (*USER_FEATURES, *MERCHANT_FEATURES, "merchant_risk")

#: Point-in-time merchant risk: ``(merchant_id, event_ms) -> risk``, None when unknown.
MerchantRisk = Callable[[str, int], float | None]

_WIDTH = len(FEATURE_NAMES)
_NAN_USER = (math.nan,) * len(USER_FEATURES)
_NAN_MERCHANT = (math.nan,) * len(MERCHANT_FEATURES)
_REQUIRED = ("tx_id", "user_id", "merchant_id", "amount", "event_time")
# Sweep idle states this often (events): keeps a long replay's memory bounded, and
# eviction never changes a feature (see UserVelocity).
_EVICT_EVERY = 100_000
# Rows are copied into the matrix this often (bounds the memory of pending tuples).
_FLUSH_EVERY = 4_096


@dataclass(frozen=True, slots=True)
class Replay:
    """Rows in ``FEATURE_NAMES`` order, one per event, with what happened to each.

    A ``duplicate`` (a ``tx_id`` already counted) is skipped like the dataflow skips it,
    and its row is NaN. ``late`` events came after the allowed lateness.
    """

    rows: NDArray[np.float64]
    late: NDArray[np.bool_]
    duplicate: NDArray[np.bool_]


class FeatureReplayer:
    """Per-user and per-merchant states fed in arrival order, as the dataflow feeds them.

    Repeats are detected per user (a ``tx_id`` always has the same user, so the ids live
    beside that user's windows, partitioned and evicted with them), with the dataflow's
    bounds (24 h of event time, 2,048 ids; see ``operators.stateful.UserState``). States idle for
    longer than their longest window + lateness are evicted as the stream advances.
    """

    __slots__ = (
        "_dedupe_max_size",
        "_dedupe_ttl_ms",
        "_ids",
        "_lateness_ms",
        "_merchant_risk",
        "_merchants",
        "_newest",
        "_users",
    )

    def __init__(
        self,
        *,
        lateness_ms: int = DEFAULT_LATENESS_MS,
        dedupe_ttl_ms: int = DAY_MS,
        dedupe_max_size: int = 2_048,
        merchant_risk: MerchantRisk | None = None,
    ) -> None:
        self._lateness_ms = lateness_ms
        self._dedupe_ttl_ms = dedupe_ttl_ms
        self._dedupe_max_size = dedupe_max_size
        self._merchant_risk = merchant_risk
        self._users: dict[str, UserVelocity] = {}
        self._merchants: dict[str, MerchantVelocity] = {}
        self._ids: dict[str, RecentIds] = {}
        self._newest = NEVER
        # Refuse bad settings now, not at the first event.
        UserVelocity(lateness_ms)
        RecentIds(dedupe_ttl_ms, dedupe_max_size)

    @property
    def users(self) -> dict[str, UserVelocity]:
        """The live per-user states (for inspection and memory accounting)."""
        return self._users

    @property
    def merchants(self) -> dict[str, MerchantVelocity]:
        """The live per-merchant states."""
        return self._merchants

    def replay(self, events: Iterable[VelocityEvent]) -> Replay:
        """Feed ``events`` in order; return one row per event."""
        batch = list(events)
        nan = math.nan
        return self._run(
            [e.tx_id for e in batch],
            [e.event_ms for e in batch],
            [round(e.amount * AMOUNT_SCALE) for e in batch],
            [e.amount for e in batch],
            [e.user_id for e in batch],
            [e.merchant_id for e in batch],
            [e.country for e in batch],
            [nan if e.lat is None else e.lat for e in batch],
            [nan if e.lon is None else e.lon for e in batch],
            dedupe=True,
        )

    def _run(
        self,
        tx_ids: Sequence[str],
        times: Sequence[int],
        units: Sequence[int],
        amounts: Sequence[float],
        users: Sequence[str],
        merchants: Sequence[str],
        countries: Sequence[str | None],
        lats: Sequence[float],
        lons: Sequence[float],
        *,
        dedupe: bool,
    ) -> Replay:
        # Columns, not per-row objects: this loop is the featurisation hot path. Rows are
        # gathered as the states' tuples and copied into the matrix a chunk at a time.
        count = len(times)
        rows = np.empty((count, _WIDTH), dtype=np.float64)
        flags = bytearray(count)  # bit 0: late, bit 1: duplicate
        chunk: list[tuple[float, ...]] = []
        chunk_start = 0
        risks: list[float] = []
        user_states, merchant_states, id_sets = self._users, self._merchants, self._ids
        lateness, risk, newest, nan = self._lateness_ms, self._merchant_risk, self._newest, math.nan
        next_flush, next_sweep = _FLUSH_EVERY, _EVICT_EVERY
        columns = zip(
            tx_ids, times, units, amounts, users, merchants, countries, lats, lons, strict=True
        )
        row = -1
        for tx_id, t, unit, amount, user, merchant, country, lat, lon in columns:
            row += 1
            if t > newest:
                newest = t
            if dedupe:
                ids = id_sets.get(user)
                if ids is None:
                    ids = id_sets[user] = RecentIds(self._dedupe_ttl_ms, self._dedupe_max_size)
                if ids.seen(tx_id, t):
                    chunk.append(_NAN_USER)
                    chunk.append(_NAN_MERCHANT)
                    risks.append(nan)
                    flags[row] = 2
                    continue
            user_state = user_states.get(user)
            if user_state is None:
                user_state = user_states[user] = UserVelocity(lateness)
            merchant_state = merchant_states.get(merchant)
            if merchant_state is None:
                merchant_state = merchant_states[merchant] = MerchantVelocity(lateness)
            user_values, user_late = user_state.observe(
                t, unit, amount, merchant, country, lat, lon
            )
            merchant_values, merchant_late = merchant_state.observe(t, unit, user)
            chunk.append(user_values)
            chunk.append(merchant_values)
            if risk is not None:
                value = risk(merchant, t)
                risks.append(nan if value is None else value)
            if user_late or merchant_late:
                flags[row] = 1
            if row >= next_flush:
                next_flush += _FLUSH_EVERY
                _copy_rows(chunk, rows, chunk_start)
                chunk_start = row + 1
                chunk = []
                if row >= next_sweep:
                    next_sweep += _EVICT_EVERY
                    self._evict(newest)
        _copy_rows(chunk, rows, chunk_start)
        self._newest = newest
        rows[:, -1] = np.array(risks, dtype=np.float64) if risk is not None else nan
        marks = np.frombuffer(bytes(flags), dtype=np.uint8)
        return Replay(rows=rows, late=(marks & 1).astype(bool), duplicate=(marks & 2) > 0)

    def _evict(self, now_ms: int) -> None:
        # In place: the replay loop holds references to these dicts.
        for states in (self._users, self._merchants, self._ids):
            for key in [key for key, state in states.items() if state.is_idle(now_ms)]:
                del states[key]


def _copy_rows(chunk: list[tuple[float, ...]], rows: NDArray[np.float64], start: int) -> None:
    """Copy (user, merchant) value tuples, alternating, into ``rows[start:]`` at once."""
    if chunk:
        width = _WIDTH - 1
        count = len(chunk) // 2
        values = np.fromiter(chain.from_iterable(chunk), dtype=np.float64, count=count * width)
        rows[start : start + count, :width] = values.reshape(count, width)


def features_for_frame(
    frame: pd.DataFrame,
    *,
    lateness_ms: int = DEFAULT_LATENESS_MS,
    merchant_risk: MerchantRisk | None = None,
) -> NDArray[np.float64]:
    """Features of every row of a Transaction-shaped frame, rows replayed in frame order.

    Columns: ``tx_id``, ``user_id``, ``merchant_id``, ``amount`` (decimal strings),
    ``event_time`` (tz-aware), optional ``country``, ``lat``, ``lon``. Frame order is the
    arrival order (``read_history`` sorts by event time). A repeated ``tx_id`` is skipped
    as the dataflow skips it and gets its first occurrence's row, as a consumer would get
    the first decision back from the idempotent decision cache.
    """
    missing = [name for name in _REQUIRED if name not in frame.columns]
    if missing:
        raise FeatureInputError(f"frame lacks columns {missing} (has {list(frame.columns)})")
    count = len(frame)
    if count == 0:
        return np.empty((0, _WIDTH), dtype=np.float64)
    tx_codes, _ = pd.factorize(frame["tx_id"])
    repeated = bool(pd.Series(tx_codes).duplicated().any())
    amounts = _amounts(frame["amount"])
    replayer = FeatureReplayer(lateness_ms=lateness_ms, merchant_risk=merchant_risk)
    replay = replayer._run(
        frame["tx_id"].astype(str).tolist() if repeated else [""] * count,
        _epoch_ms(frame["event_time"]).tolist(),
        np.rint(amounts * AMOUNT_SCALE).astype(np.int64).tolist(),
        amounts.tolist(),
        _required_ids(frame["user_id"], "user_id"),
        _required_ids(frame["merchant_id"], "merchant_id"),
        _optional_ids(frame["country"]) if "country" in frame.columns else [None] * count,
        _coordinate(frame, "lat"),
        _coordinate(frame, "lon"),
        dedupe=repeated,
    )
    rows = replay.rows
    if repeated:
        _, first_row = np.unique(tx_codes, return_index=True)
        dup = np.flatnonzero(replay.duplicate)
        rows[dup] = rows[first_row[tx_codes[dup]]]
    return rows


def _amounts(column: pd.Series) -> NDArray[np.float64]:
    try:
        amounts = np.asarray(column.astype("float64"), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise FeatureInputError(f"amount: not a decimal number ({exc})") from exc
    bad = np.flatnonzero(~np.isfinite(amounts))
    if bad.size:
        raise FeatureInputError(f"amount: missing or not finite at rows {bad[:5].tolist()}")
    return amounts


def _epoch_ms(column: pd.Series) -> NDArray[np.int64]:
    if not isinstance(column.dtype, pd.DatetimeTZDtype):
        raise FeatureInputError(
            f"event_time must be tz-aware datetimes, got {column.dtype} (localize it first)"
        )
    if column.isna().any():
        raise FeatureInputError("event_time: missing values")
    utc = column.dt.tz_convert("UTC").dt.tz_localize(None)
    millis: NDArray[np.int64] = utc.to_numpy(dtype="datetime64[ms]").astype(np.int64)
    return millis


def _optional_ids(column: pd.Series) -> list[str | None]:
    """Values as interned ``str`` (one object per distinct value), None where missing."""
    codes, uniques = pd.factorize(column)
    table: list[str | None] = [sys.intern(str(value)) for value in uniques]
    table.append(None)  # code -1 (missing) indexes the last entry
    return [table[code] for code in codes.tolist()]


def _required_ids(column: pd.Series, name: str) -> list[str]:
    codes, uniques = pd.factorize(column)
    if (codes < 0).any():
        raise FeatureInputError(f"{name}: missing values")
    table = [sys.intern(str(value)) for value in uniques]
    return [table[code] for code in codes.tolist()]


def _coordinate(frame: pd.DataFrame, name: str) -> list[float]:
    if name not in frame.columns:
        return [math.nan] * len(frame)
    values = pd.to_numeric(frame[name], errors="coerce")
    floats: list[float] = np.asarray(values, dtype=np.float64).tolist()
    return floats
