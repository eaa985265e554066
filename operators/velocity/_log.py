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

    __slots__ = ("base", "cum", "ids", "lateness", "max_t", "times")

    def __init__(self, lateness_ms: int) -> None:
        if not isinstance(lateness_ms, int) or lateness_ms < 0:
            raise FeatureInputError(f"lateness_ms must be a non-negative int, got {lateness_ms!r}")
        self.lateness = lateness_ms
        self.max_t = NEVER
        self.times = array("q")
        self.cum = array("q")
        self.base = 0  # prefix sum just before the first kept event
        self.ids: list[str] = []

    def insert(self, t: int, units: int, key: str) -> int:
        """Insert after any event with the same time; return its index."""
        times = self.times
        cum = self.cum
        n = len(times)
        if not n or t >= times[n - 1]:
            cum.append((cum[n - 1] if n else self.base) + units)
            times.append(t)
            self.ids.append(key)
            return n
        i = bisect_right(times, t)
        cum.insert(i, (cum[i - 1] if i else self.base) + units)
        for j in range(i + 1, n + 1):
            cum[j] += units
        times.insert(i, t)
        self.ids.insert(i, key)
        return i

    def drop_front(self, count: int) -> None:
        """Forget the ``count`` oldest events (their sum moves into ``base``)."""
        self.base = self.cum[count - 1]
        del self.times[:count]
        del self.cum[:count]
        del self.ids[:count]
        if abs(self.base) > _REBASE_AT:
            shift = self.base
            self.cum = array("q", [value - shift for value in self.cum])
            self.base = 0

    def snapshot(self) -> LogState:
        """The log as plain values and bytes, for a compact pickle."""
        return (
            self.lateness,
            self.max_t,
            self.base,
            self.times.tobytes(),
            self.cum.tobytes(),
            self.ids,
        )

    @classmethod
    def restore(cls, state: LogState) -> EventLog:
        """Rebuild a log from :meth:`snapshot`."""
        log = cls(state[0])
        log._load(state)
        return log

    def _load(self, state: LogState) -> None:
        lateness, max_t, base, times, cum, ids = state
        self.lateness = lateness
        self.max_t = max_t
        self.base = base
        self.times = array("q")
        self.times.frombytes(times)
        self.cum = array("q")
        self.cum.frombytes(cum)
        # Interned again so restored states share their ids like live ones do.
        self.ids = [sys.intern(key) for key in ids]
