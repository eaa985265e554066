"""Merchant label features served live: the feedback service computes, the scorer decodes.

The merchant part of :data:`operators.label_features.LABEL_FEATURES` needs every label a
merchant received in the last 28 days, which the scorer cannot hold. So the feedback
service keeps them (:class:`MerchantLabelBook`) and writes one small record per merchant
to Redis; the scorer reads it in the batch's existing MGET and turns it into the 12
values for each transaction (:func:`merchant_label_matrix`) with the semantics of
:class:`~operators.label_features.KnownLabels`:

- The "seconds since" features are exact at any event time: the record holds the event
  times of the latest known fraud and of the run's first fraud, not the differences.
- The window counts and fraud shares are those of the record's time ``t``: an event at
  ``at > t`` sees them as of ``t``, stale until the feedback service writes the merchant
  again. It writes a merchant's record whenever a label changes it and refreshes every
  record periodically (more often than once a day, see :meth:`MerchantLabelBook.evict`),
  so windows that only slide are at most one refresh period behind.
- Labels that become known between ``t`` and ``at`` are missing until the next write.

A record is compact JSON (orjson) with ``"v"`` (:data:`RECORD_VERSION`); anything else
at the key (garbage, another version) reads as "no labels", so the hot path never raises.
A bare number (``RedisStore.set_merchant_risk``, also read by older scorers) is a risk
alone: ``merchant_known_fraud_share_28d``, the rest as without labels.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from itertools import islice
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from operators.exceptions import BatchError, FeatureInputError, RecoveryStateError
from operators.label_features import DEFAULT_RUN_GAP_MS, LABEL_FEATURES, LABEL_WINDOWS
from operators.velocity._constants import DAY_MS, NEVER, SECOND_MS

__all__ = [
    "MERCHANT_LABEL_FEATURES",
    "MERCHANT_RISK_FEATURE",
    "RECORD_VERSION",
    "MerchantLabelBook",
    "merchant_label_matrix",
    "merchant_label_values",
    "merchant_risk_from",
]

#: The merchant features of ``LABEL_FEATURES``, in the same order.
MERCHANT_LABEL_FEATURES: tuple[str, ...] = tuple(
    name for name in LABEL_FEATURES if name.startswith("merchant_")
)
#: The feature that serves as the scorer's ``merchant_risk``.
MERCHANT_RISK_FEATURE = "merchant_known_fraud_share_28d"
#: The ``"v"`` of the records this code writes and reads.
RECORD_VERSION = 1

_WIDTHS = tuple(width for _, width in LABEL_WINDOWS)  # 1d, 7d, 14d, 28d
_WIDTH = len(MERCHANT_LABEL_FEATURES)
_RISK = MERCHANT_LABEL_FEATURES.index(MERCHANT_RISK_FEATURE)
_SINCE_FRAUD = MERCHANT_LABEL_FEATURES.index("merchant_seconds_since_known_fraud")
_SINCE_RUN = MERCHANT_LABEL_FEATURES.index("merchant_seconds_since_run_start")
#: Labels are kept for the longest window plus this slack (events a little behind ``now``).
_KEEP_MS = max(_WIDTHS) + DAY_MS
#: Event times beyond this are refused as garbage (float64 holds them exactly).
_MOMENT_LIMIT = 2**53

# (known_at_ms, seq, event_ms, fraud 1/0, tx_id): sorted = the order labels became known.
_Entry = tuple[int, int, int, int, str]
# (latest fraud event ms, run frauds, run labels, run start event ms) as in KnownLabels.
_Runs = tuple[int, int, int, int]
# (the 12 values with the "seconds since" left NaN, latest fraud ms, run start ms).
_Parsed = tuple[tuple[float, ...], int | None, int | None]

_NO_RUNS: _Runs = (NEVER, 0, 0, NEVER)
_NO_VALUES: tuple[float, ...] = (
    *(value for _ in _WIDTHS for value in (0.0, math.nan)),
    math.nan,  # seconds since known fraud
    math.nan,  # run share
    0.0,  # run frauds
    math.nan,  # seconds since run start
)
_NOTHING: _Parsed = (_NO_VALUES, None, None)


class _GarbageError(Exception):
    """A stored record does not have the expected shape (never escapes this module)."""


def merchant_risk_from(values: Sequence[float]) -> float:
    """The merchant risk in a row of merchant label values: its 28-day fraud share."""
    return float(values[_RISK])


def merchant_label_values(record: bytes | None, at_ms: int) -> list[float]:
    """The ``MERCHANT_LABEL_FEATURES`` of an event at ``at_ms`` from a merchant's record.

    None, garbage or an unknown version give what a merchant without labels has: counts
    0, everything else NaN. Never raises.
    """
    values, latest, start = _parse(_hashable(record))
    out = list(values)
    if latest is not None:
        out[_SINCE_FRAUD] = (at_ms - latest) / SECOND_MS
    if start is not None:
        out[_SINCE_RUN] = (at_ms - start) / SECOND_MS
    return out


def merchant_label_matrix(
    records: Sequence[bytes | None], at_ms: Sequence[int] | NDArray[np.int64]
) -> NDArray[np.float64]:
    """Row ``i``: ``merchant_label_values(records[i], at_ms[i])``, shape ``(n, 12)``.

    Each distinct record of the batch is decoded once (and recent ones are cached), then
    the rows are gathered and the "seconds since" columns computed vectorised.
    """
    size = len(records)
    if len(at_ms) != size:
        raise BatchError(f"{size} merchant records but {len(at_ms)} event times")
    if size == 0:
        return np.empty((0, _WIDTH), dtype=np.float64)
    distinct: dict[bytes | str | None, int] = {}
    codes = np.fromiter(
        (distinct.setdefault(_hashable(raw), len(distinct)) for raw in records),
        dtype=np.intp,
        count=size,
    )
    parsed = [_parse(key) for key in distinct]
    static = np.array([values for values, _, _ in parsed], dtype=np.float64)
    moments = np.array(
        [[math.nan if m is None else m for m in (latest, start)] for _, latest, start in parsed],
        dtype=np.float64,
    )
    out: NDArray[np.float64] = static[codes]
    at = np.asarray(at_ms, dtype=np.float64)
    out[:, _SINCE_FRAUD] = (at - moments[codes, 0]) / SECOND_MS
    out[:, _SINCE_RUN] = (at - moments[codes, 1]) / SECOND_MS
    return out


def _hashable(raw: object) -> bytes | str | None:
    if raw is None or isinstance(raw, bytes | str):
        return raw
    if isinstance(raw, bytearray | memoryview):
        return bytes(raw)
    return None


@lru_cache(maxsize=8192)
def _parse(raw: bytes | str | None) -> _Parsed:
    if raw is None:
        return _NOTHING
    try:
        data = orjson.loads(raw)
        if isinstance(data, dict):
            return _from_record(data)
        if isinstance(data, int | float) and not isinstance(data, bool) and 0 <= data <= 1:
            values = list(_NO_VALUES)
            values[_RISK] = float(data)
            return tuple(values), None, None
    except (orjson.JSONDecodeError, _GarbageError, KeyError, TypeError, ValueError):
        pass
    return _NOTHING


def _from_record(data: dict[str, Any]) -> _Parsed:
    version = data.get("v")
    if type(version) is not int or version != RECORD_VERSION:
        raise _GarbageError
    counts, frauds = data["n"], data["f"]
    if not isinstance(counts, list) or not isinstance(frauds, list) or len(counts) != len(_WIDTHS):
        raise _GarbageError
    values: list[float] = []
    for labels, bad in zip(counts, frauds, strict=True):  # ValueError if lengths differ
        values += [float(labels), _share(bad, labels)]
    values += [math.nan, _share(data["rf"], data["rl"]), float(data["rf"]), math.nan]
    return tuple(values), _moment(data["lf"]), _moment(data["rs"])


def _share(part: object, whole: object) -> float:
    if type(part) is not int or type(whole) is not int or not 0 <= part <= whole:
        raise _GarbageError
    return part / whole if whole else math.nan


def _moment(value: object) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not -_MOMENT_LIMIT < value < _MOMENT_LIMIT:
        raise _GarbageError
    return value


def _replay(runs: _Runs, entries: Iterable[_Entry], run_gap_ms: int) -> _Runs:
    """Fraud-run state after ``entries`` (in known order), as ``_MerchantLabels.apply``."""
    latest, frauds, labels, start = runs
    for _, _, event_ms, fraud, _ in entries:
        if fraud:
            if event_ms - latest > run_gap_ms:
                frauds = labels = 0
                start = event_ms
            frauds += 1
            labels += 1
            latest = max(latest, event_ms)
        elif labels:
            labels += 1
    return latest, frauds, labels, start


class _Merchant:
    """One merchant's retained labels (sorted by known order) and its evicted run state."""

    __slots__ = ("base", "entries")

    def __init__(self, base: _Runs = _NO_RUNS) -> None:
        self.entries: list[_Entry] = []
        self.base = base

    def record(self, now_ms: int, run_gap_ms: int) -> bytes:
        entries = self.entries
        end = bisect_left(entries, (now_ms,))  # labels known before now
        counts: list[int] = []
        frauds: list[int] = []
        for width in _WIDTHS:
            start = bisect_left(entries, (now_ms - width,), 0, end)
            counts.append(end - start)
            frauds.append(sum(entry[3] for entry in islice(entries, start, end)))
        latest, run_frauds, run_labels, start_ms = _replay(
            self.base, islice(entries, end), run_gap_ms
        )
        return orjson.dumps(
            {
                "v": RECORD_VERSION,
                "t": now_ms,
                "n": counts,
                "f": frauds,
                "lf": None if latest == NEVER else latest,
                "rs": None if start_ms == NEVER else start_ms,
                "rf": run_frauds,
                "rl": run_labels,
            }
        )


_EMPTY = _Merchant()


class MerchantLabelBook:
    """The labels known per merchant, as the feedback service keeps them live.

    Window counts follow the retained labels exactly, corrections included: a changed
    verdict replaces the earlier one, as a label that became known at the correction's
    ``known_at_ms`` (the book then equals :class:`~operators.label_features.KnownLabels`
    fed only each transaction's latest verdict). Fraud runs and the latest fraud are
    recomputed from the retained labels in the order they became known (``known_at``,
    then apply order), starting from the run state of the labels :meth:`evict` folded
    away; so they equal ``KnownLabels`` too, except that a label whose ``known_at`` is
    already behind the eviction horizon when it arrives counts after the folded ones,
    and a correction of an evicted label cannot undo the old verdict's part in the run
    state (it counts as a new label; its window counts are still right, as the old one
    has left every window). An evicted ``tx_id`` is forgotten: a redelivery that old is
    applied again.
    """

    __slots__ = ("_keep", "_labels", "_merchants", "_run_gap", "_seq")

    def __init__(self, *, run_gap_ms: int = DEFAULT_RUN_GAP_MS, keep_ms: int = _KEEP_MS) -> None:
        if run_gap_ms < 0 or keep_ms < max(_WIDTHS):
            raise FeatureInputError(
                f"need run_gap_ms >= 0 and keep_ms >= {max(_WIDTHS)}, got {run_gap_ms}, {keep_ms}"
            )
        self._run_gap = run_gap_ms
        self._keep = keep_ms
        self._merchants: dict[str, _Merchant] = {}
        self._labels: dict[str, tuple[str, _Entry]] = {}  # tx_id -> (merchant, entry)
        self._seq = 0

    @property
    def labels_held(self) -> int:
        """How many labels the book holds (evicted ones excluded)."""
        return len(self._labels)

    def apply(
        self, tx_id: str, merchant_id: str, event_ms: int, fraud: bool, known_at_ms: int
    ) -> bool:
        """A verdict on ``tx_id``, known from ``known_at_ms``; True when it changed the book.

        The same verdict again is a no-op (False); the other verdict replaces the first.
        """
        flag = 1 if fraud else 0
        held = self._labels.get(tx_id)
        if held is not None:
            merchant, entry = held
            if entry[3] == flag:
                return False
            entries = self._merchants[merchant].entries
            del entries[bisect_left(entries, entry)]
        self._seq += 1
        entry = (known_at_ms, self._seq, event_ms, flag, tx_id)
        state = self._merchants.get(merchant_id)
        if state is None:
            state = self._merchants[merchant_id] = _Merchant()
        if not state.entries or entry > state.entries[-1]:
            state.entries.append(entry)
        else:
            insort(state.entries, entry)
        self._labels[tx_id] = (merchant_id, entry)
        return True

    def records(self, now_ms: int, merchants: Iterable[str] | None = None) -> dict[str, bytes]:
        """Redis values for ``merchants`` (None: every merchant held), as of ``now_ms``.

        A merchant the book does not hold gets the record of a merchant without labels,
        so writing it clears whatever Redis had. ``now_ms`` should not go back behind an
        earlier :meth:`evict` horizon.
        """
        held = self._merchants
        names = held if merchants is None else merchants
        return {m: held.get(m, _EMPTY).record(now_ms, self._run_gap) for m in names}

    def evict(self, now_ms: int) -> int:
        """Forget labels known before ``now_ms`` minus 29 days; returns how many went.

        Their part in the fraud runs is kept. A merchant left with nothing (no labels, no
        fraud ever) is dropped: its last record already shows empty windows as long as the
        service refreshes every record more often than the day of slack beyond 28 days.
        """
        horizon = now_ms - self._keep
        forgotten = 0
        for merchant, state in list(self._merchants.items()):
            entries = state.entries
            cut = bisect_left(entries, (horizon,))
            if cut:
                old = entries[:cut]
                del entries[:cut]
                state.base = _replay(state.base, old, self._run_gap)
                for entry in old:
                    self._labels.pop(entry[4], None)
                forgotten += cut
            if not entries and state.base == _NO_RUNS:
                del self._merchants[merchant]
        return forgotten

    def state(self) -> dict[str, Any]:
        """A JSON-serialisable checkpoint (see :meth:`from_state`)."""
        return {
            "version": RECORD_VERSION,
            "run_gap_ms": self._run_gap,
            "keep_ms": self._keep,
            "seq": self._seq,
            "merchants": {
                merchant: {
                    "base": list(state.base),
                    "labels": [[e[4], e[0], e[1], e[2], e[3]] for e in state.entries],
                }
                for merchant, state in self._merchants.items()
            },
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> MerchantLabelBook:
        """The book a :meth:`state` checkpoint describes; refuses anything malformed."""
        try:
            if state["version"] != RECORD_VERSION:
                raise RecoveryStateError(f"merchant label book version {state['version']!r}")
            book = cls(run_gap_ms=_integer(state["run_gap_ms"]), keep_ms=_integer(state["keep_ms"]))
            book._seq = _integer(state["seq"])
            for merchant, held in state["merchants"].items():
                latest, run_frauds, run_labels, start = (_integer(v) for v in held["base"])
                restored = book._merchants[merchant] = _Merchant(
                    (latest, run_frauds, run_labels, start)
                )
                restored.entries = sorted(
                    (_integer(known), _integer(seq), _integer(event), _integer(fraud, 1), str(tx))
                    for tx, known, seq, event, fraud in held["labels"]
                )
                for entry in restored.entries:
                    if entry[4] in book._labels or entry[1] > book._seq:
                        raise RecoveryStateError(f"label {entry[4]!r}: repeated or out of sequence")
                    book._labels[entry[4]] = (merchant, entry)
        except (KeyError, TypeError, ValueError, AttributeError, FeatureInputError) as exc:
            raise RecoveryStateError(f"not a merchant label book state: {exc!r}") from exc
        return book


def _integer(value: object, most: int | None = None) -> int:
    if type(value) is not int or (most is not None and not 0 <= value <= most):
        raise RecoveryStateError(f"expected an integer (at most {most} if set), got {value!r}")
    return value
