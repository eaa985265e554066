"""The time-ordered log of a key's recent raw events, shared by user and merchant state.

Events are kept sorted by event time in parallel ``array`` columns (compact, picklable as
bytes) with a running prefix sum of the amounts, so any window's count is an index
difference and its sum a subtraction, whatever the window's length. An out-of-order event
is inserted at its event-time position; only the few events after it (all within the
lateness) have their prefix sums adjusted.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_right

from operators.exceptions import FeatureInputError
from operators.velocity._constants import NEVER

__all__ = ["PRUNE_BATCH", "EventLog", "LogState"]

#: What a snapshot stores for the log: lateness, newest time, prefix base, times, sums, ids.
LogState = tuple[int, int, int, bytes, bytes, list[str]]

#: Old events are dropped in batches (at least this many, or a quarter of the log) so a
#: busy key does not shift its whole log for every event; until then the windows' explicit
#: time bounds ignore them.
PRUNE_BATCH = 32
# Prefix sums are rebased before they could come near the int64 limit.
_REBASE_AT = 2**61


class EventLog:
    """Raw events of one key: times, prefix sums of amounts (1/10,000 units), and an id."""

    __slots__ = ("_base", "_cum", "_ids", "_lateness", "_max_t", "_times")

    def __init__(self, lateness_ms: int) -> None:
        if not isinstance(lateness_ms, int) or lateness_ms < 0:
            raise FeatureInputError(f"lateness_ms must be a non-negative int, got {lateness_ms!r}")
        self._lateness = lateness_ms
        self._max_t = NEVER
        self._times = array("q")
        self._cum = array("q")
        self._base = 0  # prefix sum just before the first kept event
        self._ids: list[str] = []

    def _insert(self, t: int, units: int, key: str) -> int:
        """Insert after any event with the same time; return its index."""
        times = self._times
        cum = self._cum
        n = len(times)
        if not n or t >= times[n - 1]:
            cum.append((cum[n - 1] if n else self._base) + units)
            times.append(t)
            self._ids.append(key)
            return n
        i = bisect_right(times, t)
        cum.insert(i, (cum[i - 1] if i else self._base) + units)
        for j in range(i + 1, n + 1):
            cum[j] += units
        times.insert(i, t)
        self._ids.insert(i, key)
        return i

    def _drop_front(self, count: int) -> None:
        self._base = self._cum[count - 1]
        del self._times[:count]
        del self._cum[:count]
        del self._ids[:count]
        if abs(self._base) > _REBASE_AT:
            shift = self._base
            self._cum = array("q", [value - shift for value in self._cum])
            self._base = 0

    def _log_state(self) -> LogState:
        return (
            self._lateness,
            self._max_t,
            self._base,
            self._times.tobytes(),
            self._cum.tobytes(),
            self._ids,
        )

    @classmethod
    def restore(cls, state: LogState) -> EventLog:
        """Rebuild a log from :meth:`_log_state`."""
        log = cls.__new__(cls)
        log._restore_log(state)
        return log

    def _restore_log(self, state: LogState) -> None:
        lateness, max_t, base, times, cum, ids = state
        self._lateness = lateness
        self._max_t = max_t
        self._base = base
        self._times = array("q")
        self._times.frombytes(times)
        self._cum = array("q")
        self._cum.frombytes(cum)
        # Interned again so restored states share their ids like live ones do.
        self._ids = [sys.intern(key) for key in ids]
