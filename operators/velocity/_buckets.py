"""Sparse time buckets for the long (7d, 30d) windows: count, exact sum, and spread.

A long window over raw events would hold a month of transactions per user; buckets hold
one small record per bucket instead. Each bucket keeps the count and the exact sum of
amounts (integers of 1/10,000); ``SpreadBuckets`` also keep the sum of squared deviations
from the bucket mean (``m2``), updated with Welford's step and merged with Chan's formula
using exact integer numerators. That makes the spread of identical amounts exactly 0 (so
"std 0" is detected reliably), with no catastrophic cancellation otherwise.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from typing import Self

__all__ = ["Buckets", "BucketsState", "SpreadBuckets"]

#: What a snapshot stores: keys, counts, sums and (spread buckets only) m2, as bytes.
BucketsState = tuple[bytes, bytes, bytes, bytes | None]


class Buckets:
    """Non-empty buckets in key order (key = event time // bucket size): count and sum."""

    __slots__ = ("counts", "keys", "sums")

    def __init__(self) -> None:
        self.keys = array("i")
        self.counts = array("i")
        self.sums = array("q")

    def index(self, key: int) -> int:
        """Position of bucket ``key``, or -1 if it is empty."""
        keys = self.keys
        j = len(keys) - 1
        if j >= 0 and keys[j] == key:  # the common case: the newest bucket
            return j
        j = bisect_left(keys, key)
        return j if j < len(keys) and keys[j] == key else -1

    def add(self, key: int, units: int) -> None:
        """Count one amount into bucket ``key`` (created if needed)."""
        j = self.index(key)
        if j < 0:
            self._create(key, units)
            return
        self.counts[j] += 1
        self.sums[j] += units

    def _create(self, key: int, units: int) -> int:
        keys = self.keys
        if not keys or key > keys[-1]:  # the common case: a new newest bucket
            keys.append(key)
            self.counts.append(1)
            self.sums.append(units)
            return len(keys) - 1
        j = bisect_left(keys, key)
        keys.insert(j, key)
        self.counts.insert(j, 1)
        self.sums.insert(j, units)
        return j

    def totals(self, first: int, stop: int) -> tuple[int, int]:
        """Count and sum over buckets with ``first <= key < stop``."""
        keys = self.keys
        lo = bisect_left(keys, first)
        hi = bisect_left(keys, stop, lo)
        if lo == hi:
            return 0, 0
        return sum(self.counts[lo:hi]), sum(self.sums[lo:hi])

    def drop_before(self, first: int) -> None:
        """Forget buckets with ``key < first``."""
        keys = self.keys
        if keys and keys[0] < first:
            self._drop(bisect_left(keys, first))

    def _drop(self, count: int) -> None:
        del self.keys[:count]
        del self.counts[:count]
        del self.sums[:count]

    def snapshot(self) -> BucketsState:
        """The buckets as bytes, for a compact pickle."""
        return self.keys.tobytes(), self.counts.tobytes(), self.sums.tobytes(), None

    @classmethod
    def restore(cls, state: BucketsState) -> Self:
        """Rebuild what :meth:`snapshot` saved."""
        buckets = cls()
        buckets._load(state)
        return buckets

    def _load(self, state: BucketsState) -> None:
        keys, counts, sums, _ = state
        self.keys.frombytes(keys)
        self.counts.frombytes(counts)
        self.sums.frombytes(sums)


class SpreadBuckets(Buckets):
    """Buckets that also keep each bucket's m2, for standard deviations."""

    __slots__ = ("spreads",)

    def __init__(self) -> None:
        super().__init__()
        self.spreads = array("d")

    def add(self, key: int, units: int) -> None:
        """Count one amount into bucket ``key`` (Welford's step for its m2)."""
        j = self.index(key)
        if j < 0:
            self.spreads.insert(self._create(key, units), 0.0)
            return
        count = self.counts[j]
        total = self.sums[j]
        gap = units * count - total  # exact: (x - mean) * count
        self.spreads[j] += gap * gap / (count * (count + 1))
        self.counts[j] = count + 1
        self.sums[j] = total + units

    def get(self, key: int) -> tuple[int, float]:
        """Count and m2 of bucket ``key`` (0, 0.0 if it is empty)."""
        j = self.index(key)
        return (self.counts[j], self.spreads[j]) if j >= 0 else (0, 0.0)

    def spread_totals(self, first: int, stop: int) -> tuple[int, int, float]:
        """Count, sum and m2 over buckets with ``first <= key < stop``.

        m2 = sum of the buckets' m2 + sum_j n_j (mean_j - mean)^2, each term from an exact
        integer numerator, so identical amounts give exactly 0.
        """
        keys = self.keys
        lo = bisect_left(keys, first)
        hi = bisect_left(keys, stop, lo)
        if lo == hi:
            return 0, 0, 0.0
        counts, sums = self.counts[lo:hi], self.sums[lo:hi]
        count, total = sum(counts), sum(sums)
        between = sum((count * s - n * total) ** 2 / n for n, s in zip(counts, sums, strict=True))
        return count, total, sum(self.spreads[lo:hi]) + between / (count * count)

    def _drop(self, count: int) -> None:
        super()._drop(count)
        del self.spreads[:count]

    def snapshot(self) -> BucketsState:
        """The buckets as bytes, for a compact pickle."""
        keys, counts, sums, _ = super().snapshot()
        return keys, counts, sums, self.spreads.tobytes()

    def _load(self, state: BucketsState) -> None:
        super()._load(state)
        if state[3] is not None:
            self.spreads.frombytes(state[3])
