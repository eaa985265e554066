"""Velocity state of one merchant: counts, distinct users and mean amount, at event time.

Windows are exact: for an event ``e`` they hold the seen events and ``e`` with
``e.t - H < t <= e.t`` (an event seen earlier with a later time never counts). Events
later than the lateness are still counted where their time falls inside the retained 24 h
+ lateness, and flagged ``late``.

A busy merchant sees many users per hour, so the distinct-user count is kept
incrementally for the *head* window ``(newest - 1h, newest]`` (user -> events in it);
an out-of-order event corrects the head with the few raw events between its own window
and the head's (within the lateness at both ends) instead of rescanning the hour.
"""

from __future__ import annotations

import sys
from bisect import bisect_right
from typing import TYPE_CHECKING

from operators.velocity._constants import (
    AMOUNT_SCALE,
    DAY_MS,
    DEFAULT_LATENESS_MS,
    FOREVER,
    HOUR_MS,
    MERCHANT_KEEP_MS,
    NEVER,
)
from operators.velocity._event import MERCHANT_FEATURES, VelocityEvent, WindowResult
from operators.velocity._log import PRUNE_BATCH, EventLog, LogState
from operators.velocity._size import deep_size

if TYPE_CHECKING:
    from schemas import Transaction

__all__ = ["MerchantVelocity"]


class MerchantVelocity:
    """All velocity state of ONE merchant; ``update`` returns the features of each event."""

    __slots__ = ("_head", "_log", "_prune_at", "_slide_at")

    def __init__(self, lateness_ms: int = DEFAULT_LATENESS_MS) -> None:
        self._log = EventLog(lateness_ms)
        self._head: dict[str, int] = {}  # user -> events in (newest - 1h, newest]
        # Newest times at which an event leaves the head / the raw log (NEVER: recompute).
        self._slide_at = NEVER
        self._prune_at = NEVER

    def update(self, event: VelocityEvent) -> WindowResult:
        """Count ``event`` in and return its features (``MERCHANT_FEATURES`` order)."""
        values, late = self.observe(
            event.event_ms, round(event.amount * AMOUNT_SCALE), event.user_id
        )
        return WindowResult(dict(zip(MERCHANT_FEATURES, map(float, values), strict=True)), late)

    def update_transaction(self, tx: Transaction, event_ms: int) -> WindowResult:
        """``update(VelocityEvent.from_transaction(tx))``, without building the event."""
        units = round(float(tx.amount) * AMOUNT_SCALE)
        values, late = self.observe(event_ms, units, sys.intern(tx.user_id))
        return WindowResult(dict(zip(MERCHANT_FEATURES, map(float, values), strict=True)), late)

    def is_idle(self, now_ms: int) -> bool:
        """True when no event is within 24 h + lateness of ``now_ms``: evict the state."""
        log = self._log
        return now_ms - log.max_t > MERCHANT_KEEP_MS + log.lateness

    def approx_bytes(self) -> int:
        """Bytes this state holds in memory (ids count as shared pointers)."""
        return deep_size(self)

    def observe(self, t: int, units: int, user: str) -> tuple[tuple[float, ...], bool]:
        """The hot path behind :meth:`update` (amount in 1/10,000): values and late flag."""
        log = self._log
        newest = log.max_t
        late = t < newest - log.lateness
        head = self._head
        if t > newest:
            if t >= self._slide_at:
                self._slide_head(newest, t)
            log.max_t = newest = t
            if t >= self._prune_at:
                self._prune()
        if t > newest - HOUR_MS:
            head[user] = head.get(user, 0) + 1
            if t + HOUR_MS < self._slide_at:
                self._slide_at = t + HOUR_MS
        times, cum = log.times, log.cum
        n = len(times)
        if n and t < times[n - 1]:
            i = log.insert(t, units, user)
            if i == 0:  # a new oldest event: the prune deadline may move earlier
                self._prune_at = NEVER
        else:  # in order: append (inlined, the common case)
            i = n
            cum.append((cum[n - 1] if n else log.base) + units)
            times.append(t)
            log.ids.append(user)
            if not n:
                self._prune_at = NEVER
        base = log.base
        hi = i + 1
        # Window starts: bisect only when an earlier event is close enough to count.
        previous = times[i - 1] if i else NEVER
        lo_day = lo_hour = i
        if previous > t - DAY_MS:
            lo_day = 0 if times[0] > t - DAY_MS else bisect_right(times, t - DAY_MS, 0, i)
            if previous > t - HOUR_MS:
                lo_hour = bisect_right(times, t - HOUR_MS, lo_day, i)
        sum_day = cum[i] - (cum[lo_day - 1] if lo_day else base)
        # Nothing later than e: its hour is exactly the head window.
        distinct = len(head) if hi == len(times) else self._distinct_hour(t, lo_hour, hi)
        return (
            hi - lo_hour,
            hi - lo_day,
            distinct,
            sum_day / ((hi - lo_day) * AMOUNT_SCALE),
        ), late

    def _slide_head(self, old_newest: int, new_newest: int) -> None:
        """Drop from the head the events that leave it when the newest time advances."""
        times, users, head = self._log.times, self._log.ids, self._head
        first = bisect_right(times, old_newest - HOUR_MS)
        stop = bisect_right(times, new_newest - HOUR_MS, first)
        for j in range(first, stop):
            user = users[j]
            left = head[user] - 1
            if left:
                head[user] = left
            else:
                del head[user]
        self._slide_at = times[stop] + HOUR_MS if stop < len(times) else FOREVER

    def _prune(self) -> None:
        """Drop raw events older than 24 h + lateness (in batches); set the next deadline."""
        log = self._log
        times = log.times
        keep = MERCHANT_KEEP_MS + log.lateness
        stale = bisect_right(times, log.max_t - keep)
        if stale and (stale >= PRUNE_BATCH or 4 * stale >= len(times)):
            log.drop_front(stale)
            stale = 0
        # The next deadline: when the oldest event still kept turns stale.
        self._prune_at = times[stale] + keep if stale < len(times) else FOREVER

    def _distinct_hour(self, t: int, lo_hour: int, hi: int) -> int:
        """Distinct users in ``(t - 1h, t]``: the head corrected, or a scan if cheaper."""
        log = self._log
        times, users, head = log.times, log.ids, self._head
        # e's hour = head - events after e (time in (t, newest]) + (t - 1h, newest - 1h].
        stop_early = bisect_right(times, log.max_t - HOUR_MS, lo_hour)
        corrections = len(times) - hi + stop_early - lo_hour
        if corrections >= hi - lo_hour:
            return len(set(users[lo_hour:hi]))
        delta: dict[str, int] = {}
        for j in range(hi, len(times)):
            delta[users[j]] = delta.get(users[j], 0) - 1
        for j in range(lo_hour, stop_early):
            delta[users[j]] = delta.get(users[j], 0) + 1
        distinct = len(head)
        for user, change in delta.items():
            was = head.get(user, 0)
            distinct += (was + change > 0) - (was > 0)
        return distinct

    def __getstate__(self) -> LogState:
        # The head is derived data: rebuilt from the log on restore, not pickled.
        return self._log.snapshot()

    def __setstate__(self, state: LogState) -> None:
        self._log = log = EventLog.restore(state)
        self._slide_at = NEVER
        self._prune_at = NEVER
        self._head = {}
        for user in log.ids[bisect_right(log.times, log.max_t - HOUR_MS) :]:
            self._head[user] = self._head.get(user, 0) + 1
