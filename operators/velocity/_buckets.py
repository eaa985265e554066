"""Sparse time buckets for the long (7d, 30d) windows.

A long window over raw events would hold a month of transactions per user; buckets hold
one small record per non-empty bucket instead (key = event time // bucket size).

- ``PrefixBuckets`` (7d) keep running totals of counts and exact sums (integers of
  1/10,000), so a window of buckets is two subtractions, whatever its length.
- ``SpreadBuckets`` (30d) keep per bucket the count, the exact sum and the sum of squared
  deviations from the bucket mean (``m2``), updated with Welford's step and combined with
  Chan's formula using exact integer numerators. That makes the spread of identical
  amounts exactly 0 (so "std 0" is detected reliably), with no catastrophic cancellation
  otherwise.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left

__all__ = ["PrefixBuckets", "PrefixState", "SpreadBuckets", "SpreadState"]

#: Snapshot of prefix buckets: keys, running counts, running sums (bytes), and the
#: running totals just before the first kept bucket.
PrefixState = tuple[bytes, bytes, bytes, int, int]
#: Snapshot of spread buckets: keys, counts, sums, m2 (bytes).
SpreadState = tuple[bytes, bytes, bytes, bytes]

# Running totals are rebased (on a drop) long before they could overflow their arrays.
_REBASE_AT = 2**61
_REBASE_COUNT_AT = 2**30


class PrefixBuckets:
    """Non-empty buckets in key order, with running totals of counts and sums."""

    __slots__ = ("base_count", "base_sum", "counts", "keys", "sums")

    def __init__(self) -> None:
        self.keys = array("i")
        self.counts = array("i")  # events in buckets[0..j], plus base_count
        self.sums = array("q")  # amounts in buckets[0..j], plus base_sum
        self.base_count = 0
        self.base_sum = 0

    def add(self, key: int, units: int) -> None:
        """Count one amount into bucket ``key`` (created if needed)."""
        keys, counts, sums = self.keys, self.counts, self.sums
        last = len(keys) - 1
        if last >= 0 and keys[last] == key:  # the common case: the newest bucket
            counts[last] += 1
            sums[last] += units
            return
        if last < 0 or key > keys[last]:  # a new newest bucket
            keys.append(key)
            counts.append((counts[last] if last >= 0 else self.base_count) + 1)
            sums.append((sums[last] if last >= 0 else self.base_sum) + units)
            return
        j = bisect_left(keys, key)  # an older bucket (an out-of-order event)
        if keys[j] != key:
            keys.insert(j, key)
            counts.insert(j, counts[j - 1] if j else self.base_count)
            sums.insert(j, sums[j - 1] if j else self.base_sum)
        for k in range(j, len(keys)):  # this bucket's and every later running total
            counts[k] += 1
            sums[k] += units

    def totals(self, first: int, stop: int) -> tuple[int, int]:
        """Count and sum over buckets with ``first <= key < stop``."""
        keys = self.keys
        last = len(keys) - 1
        if last < 0:
            return 0, 0
        lo = 0 if keys[0] >= first else bisect_left(keys, first)
        hi = last + 1 if keys[last] < stop else bisect_left(keys, stop, lo)
        if lo == hi:
            return 0, 0
        if lo:
            return self.counts[hi - 1] - self.counts[lo - 1], self.sums[hi - 1] - self.sums[lo - 1]
        return self.counts[hi - 1] - self.base_count, self.sums[hi - 1] - self.base_sum

    def drop_before(self, first: int) -> None:
        """Forget buckets with ``key < first``."""
        keys = self.keys
        if not keys or keys[0] >= first:
            return
        k = bisect_left(keys, first)
        self.base_count = self.counts[k - 1]
        self.base_sum = self.sums[k - 1]
        del keys[:k]
        del self.counts[:k]
        del self.sums[:k]
        if self.base_count > _REBASE_COUNT_AT or abs(self.base_sum) > _REBASE_AT:
            self.counts = array("i", [c - self.base_count for c in self.counts])
            self.sums = array("q", [s - self.base_sum for s in self.sums])
            self.base_count = self.base_sum = 0

    def snapshot(self) -> PrefixState:
        """The buckets as bytes, for a compact pickle."""
        return (
            self.keys.tobytes(),
            self.counts.tobytes(),
            self.sums.tobytes(),
            self.base_count,
            self.base_sum,
        )

    @classmethod
    def restore(cls, state: PrefixState) -> PrefixBuckets:
        """Rebuild what :meth:`snapshot` saved."""
        buckets = cls()
        keys, counts, sums, buckets.base_count, buckets.base_sum = state
        buckets.keys.frombytes(keys)
        buckets.counts.frombytes(counts)
        buckets.sums.frombytes(sums)
        return buckets


class SpreadBuckets:
    """Non-empty buckets in key order: count, exact sum and m2 of each."""

    __slots__ = ("counts", "keys", "spreads", "sums")

    def __init__(self) -> None:
        self.keys = array("i")
        self.counts = array("i")
        self.sums = array("q")
        self.spreads = array("d")

    def add(self, key: int, units: int) -> None:
        """Count one amount into bucket ``key`` (Welford's step for its m2)."""
        keys = self.keys
        j = len(keys) - 1
        if j < 0 or keys[j] != key:
            j = bisect_left(keys, key)
            if j == len(keys) or keys[j] != key:
                keys.insert(j, key)
                self.counts.insert(j, 1)
                self.sums.insert(j, units)
                self.spreads.insert(j, 0.0)
                return
        count = self.counts[j]
        total = self.sums[j]
        gap = units * count - total  # exact: (x - mean) * count
        self.spreads[j] += gap * gap / (count * (count + 1))
        self.counts[j] = count + 1
        self.sums[j] = total + units

    def get(self, key: int) -> tuple[int, float]:
        """Count and m2 of bucket ``key`` (0, 0.0 if it is empty)."""
        keys = self.keys
        j = bisect_left(keys, key)
        if j < len(keys) and keys[j] == key:
            return self.counts[j], self.spreads[j]
        return 0, 0.0

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

    def drop_before(self, first: int) -> None:
        """Forget buckets with ``key < first``."""
        keys = self.keys
        if keys and keys[0] < first:
            k = bisect_left(keys, first)
            del keys[:k]
            del self.counts[:k]
            del self.sums[:k]
            del self.spreads[:k]

    def snapshot(self) -> SpreadState:
        """The buckets as bytes, for a compact pickle."""
        return (
            self.keys.tobytes(),
            self.counts.tobytes(),
            self.sums.tobytes(),
            self.spreads.tobytes(),
        )

    @classmethod
    def restore(cls, state: SpreadState) -> SpreadBuckets:
        """Rebuild what :meth:`snapshot` saved."""
        buckets = cls()
        keys, counts, sums, spreads = state
        buckets.keys.frombytes(keys)
        buckets.counts.frombytes(counts)
        buckets.sums.frombytes(sums)
        buckets.spreads.frombytes(spreads)
        return buckets
