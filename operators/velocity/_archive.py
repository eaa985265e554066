"""What a user's events still mean for 30-day features once they leave the raw log.

The raw log keeps 30 h (+ lateness). "Previous transaction", "first time at this
merchant" and "previous located transaction" look back 30 days, but need only the last
time per merchant, the last time, and the last location: this keeps just those.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_right

from operators.velocity._constants import NEVER

__all__ = ["Archive", "ArchiveState"]

#: Snapshot: merchants, their last times (bytes), last time, last location.
ArchiveState = tuple[list[str], bytes, int, tuple[int, float, float] | None]


class Archive:
    """Last time per merchant (ascending by time), last time, last location."""

    __slots__ = ("last_loc", "last_t", "merchants", "times")

    def __init__(self) -> None:
        self.merchants: list[str] = []
        self.times = array("q")  # parallel to merchants, ascending
        self.last_t = NEVER
        self.last_loc: tuple[int, float, float] | None = None

    def record(
        self, times: array[int], merchants: list[str], coords: array[float] | None, count: int
    ) -> None:
        """Take in the first ``count`` events of a raw log (``coords``: lat, lon pairs)."""
        names, stamps = self.merchants, self.times
        for j in range(count):
            t, merchant = times[j], merchants[j]
            if t > self.last_t:
                self.last_t = t
            if coords is not None:
                lat = coords[2 * j]
                if lat == lat and (self.last_loc is None or t >= self.last_loc[0]):
                    self.last_loc = (t, lat, coords[2 * j + 1])
            if merchant in names:
                k = names.index(merchant)
                if stamps[k] >= t:
                    continue
                del names[k]
                del stamps[k]
            if not stamps or t >= stamps[-1]:  # the common case: archived in time order
                names.append(merchant)
                stamps.append(t)
            else:
                k = bisect_right(stamps, t)
                names.insert(k, merchant)
                stamps.insert(k, t)

    def forget(self, horizon: int) -> None:
        """Drop everything at or before ``horizon`` (the last time too, once it is)."""
        times = self.times
        if times and times[0] <= horizon:
            gone = bisect_right(times, horizon)
            del times[:gone]
            del self.merchants[:gone]
        if self.last_t <= horizon:
            self.last_t = NEVER
        if self.last_loc is not None and self.last_loc[0] <= horizon:
            self.last_loc = None

    def snapshot(self) -> ArchiveState:
        """Compact, picklable form."""
        return self.merchants, self.times.tobytes(), self.last_t, self.last_loc

    @classmethod
    def restore(cls, state: ArchiveState) -> Archive:
        """Rebuild from :meth:`snapshot` (ids interned again, shared like live ones)."""
        merchants, times, last_t, last_loc = state
        archive = cls()
        archive.merchants = [sys.intern(merchant) for merchant in merchants]
        archive.times.frombytes(times)
        archive.last_t = last_t
        archive.last_loc = last_loc
        return archive
