"""Recently seen transaction ids, so a repeated delivery is not counted twice.

Kafka delivery is at-least-once and producers retry: the same ``tx_id`` can arrive again.
The dataflow asks :class:`RecentIds` before updating any window and skips a repeat. The
memory is bounded twice: by event time (an id is forgotten once the newest event time
recorded is more than ``ttl_ms`` past its own) and by count (at most ``max_size`` ids;
the earliest recorded goes first).
"""

from __future__ import annotations

from collections import OrderedDict

from operators.exceptions import FeatureInputError
from operators.velocity._constants import DAY_MS

__all__ = ["RecentIds"]


class RecentIds:
    """A bounded, time-limited set of transaction ids (in recording order)."""

    __slots__ = ("_ids", "_max_size", "_newest", "_ttl")

    def __init__(self, ttl_ms: int = DAY_MS, max_size: int = 10_000) -> None:
        if ttl_ms < 0 or max_size < 1:
            raise FeatureInputError(
                f"RecentIds needs ttl_ms >= 0 and max_size >= 1, got {ttl_ms}, {max_size}"
            )
        self._ttl = ttl_ms
        self._max_size = max_size
        self._ids: OrderedDict[str, int] = OrderedDict()  # tx_id -> event ms
        self._newest: int | None = None

    def __len__(self) -> int:
        return len(self._ids)

    def seen(self, tx_id: str, event_ms: int) -> bool:
        """True if ``tx_id`` is remembered (a repeat); otherwise record it and say False."""
        ids = self._ids
        recorded = ids.get(tx_id)
        newest = self._newest
        if recorded is not None:
            if newest is not None and recorded >= newest - self._ttl:
                return True
            del ids[tx_id]  # expired but not yet dropped: record it afresh
        ids[tx_id] = event_ms
        if newest is None or event_ms > newest:
            self._newest = newest = event_ms
        horizon = newest - self._ttl
        while ids and (len(ids) > self._max_size or ids[next(iter(ids))] < horizon):
            ids.popitem(last=False)
        return False

    def is_idle(self, now_ms: int) -> bool:
        """True when every id has expired at ``now_ms``: the set can be dropped."""
        return self._newest is None or now_ms - self._newest > self._ttl
