"""Sparse time buckets for the long (7d, 30d) windows: count, exact sum, and spread.

A long window over raw events would hold a month of transactions per user; buckets hold
one small record per bucket instead. Each bucket keeps the count, the exact sum of
amounts (integers of 1/10,000) and, when asked for, the sum of squared deviations from
the bucket mean (``m2``), updated with Welford's step and merged with Chan's formula
using exact integer numerators. That makes a spread of identical amounts exactly 0 (so
"std 0" is detected reliably), with no catastrophic cancellation otherwise.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left

__all__ = ["Buckets", "BucketsState", "merge_spread"]

#: What a snapshot stores: keys, counts, sums, spreads (empty when not tracked), as bytes.
BucketsState = tuple[bytes, bytes, bytes, bytes | None]


def merge_spread(
    count_a: int, sum_a: int, m2_a: float, count_b: int, sum_b: int, m2_b: float
) -> float:
    """The m2 of two disjoint sets, from their counts, exact sums and m2 (Chan et al.)."""
    if not count_a:
        return m2_b
    if not count_b:
        return m2_a
    gap = sum_b * count_a - sum_a * count_b  # exact: (mean_b - mean_a) * count_a * count_b
    return m2_a + m2_b + gap * gap / (count_a * count_b * (count_a + count_b))


class Buckets:
    """Non-empty buckets in key order (key = event time // bucket size)."""

    __slots__ = ("counts", "keys", "spreads", "sums")

    def __init__(self, *, with_spread: bool) -> None:
        self.keys = array("i")
        self.counts = array("i")
        self.sums = array("q")
        self.spreads: array[float] | None = array("d") if with_spread else None

    def add(self, key: int, units: int) -> None:
        """Count one amount into bucket ``key`` (created if needed)."""
        keys = self.keys
        n = len(keys)
        j = n - 1
        if not n or keys[j] != key:
            j = bisect_left(keys, key)
            if j == n or keys[j] != key:
                keys.insert(j, key)
                self.counts.insert(j, 1)
                self.sums.insert(j, units)
                if self.spreads is not None:
                    self.spreads.insert(j, 0.0)
                return
        count = self.counts[j]
        total = self.sums[j]
        if self.spreads is not None:
            gap = units * count - total  # exact: (x - mean) * count
            self.spreads[j] += gap * gap / (count * (count + 1))
        self.counts[j] = count + 1
        self.sums[j] = total + units

    def get(self, key: int) -> tuple[int, int, float]:
        """Count, sum and m2 of bucket ``key`` (zeros if it is empty)."""
        keys = self.keys
        j = bisect_left(keys, key)
        if j == len(keys) or keys[j] != key:
            return 0, 0, 0.0
        spread = self.spreads[j] if self.spreads is not None else 0.0
        return self.counts[j], self.sums[j], spread

    def totals(self, first: int, stop: int) -> tuple[int, int]:
        """Count and sum over buckets with ``first <= key < stop``."""
        keys = self.keys
        lo = bisect_left(keys, first)
        hi = bisect_left(keys, stop, lo)
        if lo == hi:
            return 0, 0
        return sum(self.counts[lo:hi]), sum(self.sums[lo:hi])

    def spread_totals(self, first: int, stop: int) -> tuple[int, int, float]:
        """Count, sum and m2 over buckets with ``first <= key < stop``."""
        keys = self.keys
        spreads = self.spreads
        lo = bisect_left(keys, first)
        hi = bisect_left(keys, stop, lo)
        count, total, m2 = 0, 0, 0.0
        if spreads is None:
            return count, total, m2
        counts, sums = self.counts, self.sums
        for j in range(lo, hi):
            m2 = merge_spread(count, total, m2, counts[j], sums[j], spreads[j])
            count += counts[j]
            total += sums[j]
        return count, total, m2

    def drop_before(self, first: int) -> None:
        """Forget buckets with ``key < first``."""
        keys = self.keys
        if not keys or keys[0] >= first:
            return
        k = bisect_left(keys, first)
        del keys[:k]
        del self.counts[:k]
        del self.sums[:k]
        if self.spreads is not None:
            del self.spreads[:k]

    def snapshot(self) -> BucketsState:
        """The buckets as bytes, for a compact pickle."""
        spreads = None if self.spreads is None else self.spreads.tobytes()
        return self.keys.tobytes(), self.counts.tobytes(), self.sums.tobytes(), spreads

    @classmethod
    def restore(cls, state: BucketsState) -> Buckets:
        """Rebuild buckets from :meth:`snapshot`."""
        keys, counts, sums, spreads = state
        buckets = cls(with_spread=spreads is not None)
        buckets.keys.frombytes(keys)
        buckets.counts.frombytes(counts)
        buckets.sums.frombytes(sums)
        if buckets.spreads is not None and spreads is not None:
            buckets.spreads.frombytes(spreads)
        return buckets
