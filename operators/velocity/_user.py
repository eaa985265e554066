"""Velocity state of one user: every per-user feature, at event time, in one pass.

Definitions (``e`` is the event being scored, "seen" means already processed by this
state, in arrival order; ``e`` itself counts in every window):

- Exact windows (1m, 10m, 1h, 24h): seen events and ``e`` with ``e.t - H < t <= e.t``.
  An event seen earlier but with a later event time never counts.
- Bucketed windows: 7d uses 24 buckets of 7 h, 30d uses 24 buckets of 30 h (bucket
  ``k = t // B``, epoch-aligned; N = 24 buckets of B = H / 24). The window of ``e``
  holds the seen events and ``e`` with ``t <= e.t`` and ``t // B >= e.t // B - (N - 1)``:
  the N - 1 buckets before ``e``'s plus ``e``'s own bucket up to ``e.t``. It always lies
  inside the exact sliding window and covers at least its last ``H - B``.
- ``user_amount_ratio_30d`` and ``user_amount_zscore_30d`` use the *prior* 30d window:
  the bucketed 30d window without ``e`` itself (seen events at ``e.t`` are prior). Ratio:
  amount / prior mean, NaN if no prior or a prior mean of 0. Z-score: (amount - prior
  mean) / prior sample std, NaN if fewer than 2 prior or a std of exactly 0.
- "Previous" means the latest seen event with ``e.t - 30d < t <= e.t`` (an equal time
  is previous, with a delta of 0); the same 30 days bound first-time-at-merchant and the
  previous located transaction, so evicting an idle state never changes a feature.
  Among equal times the one seen last is the previous located transaction.
- Events later than the lateness (``e.t < newest - lateness``) are still counted
  everywhere their time still falls inside the retained state, and flagged ``late``.

State: raw events for 30 h + lateness (time, prefix sums, merchant, and country and
coordinates only once the user has had one), 7 h and 30 h buckets for 30 days +
lateness, and an archive of what older events still mean for the 30-day features.
"""

from __future__ import annotations

import math
import sys
from array import array
from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING

from operators.velocity._archive import Archive, ArchiveState
from operators.velocity._buckets import PrefixBuckets, PrefixState, SpreadBuckets, SpreadState
from operators.velocity._constants import (
    AMOUNT_SCALE,
    DAY_MS,
    DEFAULT_LATENESS_MS,
    HOUR_MS,
    LONGEST_USER_MS,
    MINUTE_MS,
    MONTH_BUCKET_MS,
    MONTH_BUCKETS,
    NEVER,
    RAW_KEEP_MS,
    SECOND_MS,
    WEEK_BUCKET_MS,
    WEEK_BUCKETS,
)
from operators.velocity._event import USER_FEATURES, VelocityEvent, WindowResult
from operators.velocity._geo import haversine_km
from operators.velocity._log import PRUNE_BATCH, EventLog, LogState
from operators.velocity._size import deep_size

if TYPE_CHECKING:
    from schemas import Transaction

__all__ = ["UserVelocity"]

_NAN = math.nan
_TEN_MINUTES_MS = 10 * MINUTE_MS
#: The snapshot of an empty archive (what a state without one writes, as before).
_NO_ARCHIVE: ArchiveState = ([], b"", NEVER, None)
_UserState = tuple[
    LogState, list[str | None] | None, bytes | None, PrefixState, SpreadState, ArchiveState
]


class UserVelocity:
    """All velocity state of ONE user; ``update`` returns the features of each event."""

    __slots__ = (
        "_archive",
        "_coords",
        "_countries",
        "_log",
        "_month",
        "_month_cache",
        "_week",
    )

    def __init__(self, lateness_ms: int = DEFAULT_LATENESS_MS) -> None:
        self._log = EventLog(lateness_ms)
        self._countries: list[str | None] | None = None  # only once a country was seen
        self._coords: array[float] | None = None  # lat, lon pairs; only once located
        self._week = PrefixBuckets()
        self._month = SpreadBuckets()
        self._archive: Archive | None = None  # only once an event left the raw log
        # The month's closed buckets for one day key (never used or set by late events).
        self._month_cache: tuple[int, int, int, float] | None = None

    def update(self, event: VelocityEvent) -> WindowResult:
        """Count ``event`` in and return its features (``USER_FEATURES`` order)."""
        values, late = self.observe(
            event.event_ms,
            round(event.amount * AMOUNT_SCALE),
            event.amount,
            event.merchant_id,
            event.country,
            _NAN if event.lat is None else event.lat,
            _NAN if event.lon is None else event.lon,
        )
        return WindowResult(dict(zip(USER_FEATURES, map(float, values), strict=True)), late)

    def update_transaction(self, tx: Transaction, event_ms: int) -> WindowResult:
        """``update(VelocityEvent.from_transaction(tx))``, without building the event.

        The scorer's hot path (the event cost ~7 % of its CPU): ``event_ms`` was computed
        when the record was decoded, and the schema already bounds the amount and the
        time that the event would check.
        """
        amount = float(tx.amount)
        country, lat, lon = tx.country, tx.lat, tx.lon
        values, late = self.observe(
            event_ms,
            round(amount * AMOUNT_SCALE),
            amount,
            sys.intern(tx.merchant_id),
            None if country is None else sys.intern(country),
            _NAN if lat is None else lat,
            _NAN if lon is None else lon,
        )
        return WindowResult(dict(zip(USER_FEATURES, map(float, values), strict=True)), late)

    def is_idle(self, now_ms: int) -> bool:
        """True when no event is within 30 days + lateness of ``now_ms``: evict the state."""
        log = self._log
        return now_ms - log.max_t > LONGEST_USER_MS + log.lateness

    def approx_bytes(self) -> int:
        """Bytes this state holds in memory (ids count as shared pointers)."""
        return deep_size(self)

    def observe(
        self,
        t: int,
        units: int,
        amount: float,
        merchant: str,
        country: str | None,
        lat: float,
        lon: float,
    ) -> tuple[tuple[float, ...], bool]:
        """The hot path behind :meth:`update`, on plain values (amount in 1/10,000).

        Missing coordinates are NaN. Returns the feature values and the late flag.
        """
        log = self._log
        late = t < log.max_t - log.lateness
        if t > log.max_t:
            log.max_t = t
            self._prune(t - log.lateness)
        times, cum, merchants = log.times, log.cum, log.ids
        n = len(times)
        if n and t < times[n - 1]:
            i = log.insert(t, units, merchant)
        else:  # in order: append (inlined, the common case)
            i = n
            cum.append((cum[n - 1] if n else log.base) + units)
            times.append(t)
            merchants.append(merchant)
        located = lat == lat and lon == lon  # NaN is the only value unequal to itself
        if country is not None or self._countries is not None:
            self._insert_country(i, country)
        if located:
            self._insert_coords(i, lat, lon)
        elif self._coords is not None:
            self._insert_coords(i, _NAN, _NAN)  # half a location is no location

        base = log.base
        hi = i + 1
        top = cum[i]
        before = top - units  # prefix sum of everything before e
        unit_amount = units / AMOUNT_SCALE
        # Window starts: bisect only when an earlier event is close enough to count.
        previous = times[i - 1] if i else NEVER
        lo_day = lo_hour = lo_10m = lo_min = i
        if previous > t - DAY_MS:
            lo_day = 0 if times[0] > t - DAY_MS else bisect_right(times, t - DAY_MS, 0, i)
            if previous > t - HOUR_MS:
                lo_hour = bisect_right(times, t - HOUR_MS, lo_day, i)
                if previous > t - _TEN_MINUTES_MS:
                    lo_10m = bisect_right(times, t - _TEN_MINUTES_MS, lo_hour, i)
                    if previous > t - MINUTE_MS:
                        lo_min = bisect_right(times, t - MINUTE_MS, lo_10m, i)
        # Sums and means; a window holding e alone needs no arithmetic.
        sum_min = mean_min = sum_10m = mean_10m = sum_hour = mean_hour = unit_amount
        sum_day = mean_day = unit_amount
        if lo_day < i:
            total = top - (cum[lo_day - 1] if lo_day else base)
            sum_day, mean_day = total / AMOUNT_SCALE, total / ((hi - lo_day) * AMOUNT_SCALE)
            if lo_hour < i:
                total = top - (cum[lo_hour - 1] if lo_hour else base)
                sum_hour = total / AMOUNT_SCALE
                mean_hour = total / ((hi - lo_hour) * AMOUNT_SCALE)
                if lo_10m < i:
                    total = top - (cum[lo_10m - 1] if lo_10m else base)
                    sum_10m = total / AMOUNT_SCALE
                    mean_10m = total / ((hi - lo_10m) * AMOUNT_SCALE)
                    if lo_min < i:
                        total = top - (cum[lo_min - 1] if lo_min else base)
                        sum_min = total / AMOUNT_SCALE
                        mean_min = total / ((hi - lo_min) * AMOUNT_SCALE)

        # Bucketed windows: closed buckets from the stores, e's own bucket from raw events.
        week_key = t // WEEK_BUCKET_MS
        week_start = week_key * WEEK_BUCKET_MS
        lo_week = i if previous < week_start else bisect_left(times, week_start, lo_day, i)
        week_n, week_s = self._week.totals(week_key - WEEK_BUCKETS + 1, week_key)
        count_week = week_n + hi - lo_week
        sum_week = week_s + top - (cum[lo_week - 1] if lo_week else base)

        month_key = t // MONTH_BUCKET_MS
        month_start = month_key * MONTH_BUCKET_MS
        # (a 30 h bucket may start before e's 24 h window: search from the log's start)
        lo_month = i if previous < month_start else bisect_left(times, month_start, 0, i)
        open_n = i - lo_month  # prior events in e's own day
        open_s = before - (cum[lo_month - 1] if lo_month else base)
        open_m2 = self._open_spread(month_key, lo_month, i, open_n, open_s) if open_n > 1 else 0.0
        closed = self._month_cache
        if closed is None or closed[0] != month_key or late:
            closed = self._month_closed(month_key, late)
        _, closed_n, closed_s, prior_m2 = closed
        prior_n = closed_n + open_n
        prior_s = closed_s + open_s
        if closed_n and open_n:  # Chan's merge, exact integer numerator
            gap = open_s * closed_n - closed_s * open_n
            prior_m2 += open_m2 + gap * gap / (closed_n * open_n * prior_n)
        else:
            prior_m2 += open_m2
        ratio = units * prior_n / prior_s if prior_n and prior_s else _NAN
        if prior_n > 1 and prior_m2 > 0.0:
            zscore = (units * prior_n - prior_s) / (prior_n * math.sqrt(prior_m2 / (prior_n - 1)))
        else:
            zscore = _NAN

        floor = t - LONGEST_USER_MS
        archive = self._archive
        prev = previous
        if archive is not None and prev < archive.last_t <= t:
            prev = archive.last_t
        since_prev = (t - prev) / SECOND_MS if prev > floor else _NAN
        if times[0] > floor and hi == len(times):  # e is newest; nothing is too old
            first_time = merchants.count(merchant) == 1
        else:
            first_time = merchant not in merchants[bisect_right(times, floor, 0, i) : i]
        if first_time and archive is not None and merchant in archive.merchants:
            first_time = not floor < archive.times[archive.merchants.index(merchant)] <= t

        countries = self._countries
        if countries is None:
            distinct_countries = 0
        else:
            known = set(countries[lo_day:hi])
            known.discard(None)
            distinct_countries = len(known)

        result = (
            hi - lo_min,
            sum_min,
            mean_min,
            hi - lo_10m,
            sum_10m,
            mean_10m,
            hi - lo_hour,
            sum_hour,
            mean_hour,
            hi - lo_day,
            sum_day,
            mean_day,
            count_week,
            sum_week / AMOUNT_SCALE,
            sum_week / (count_week * AMOUNT_SCALE),
            prior_n + 1,
            (prior_s + units) / AMOUNT_SCALE,
            (prior_s + units) / ((prior_n + 1) * AMOUNT_SCALE),
            since_prev,
            ratio,
            zscore,
            len(set(merchants[lo_hour:hi])) if lo_hour < i else 1,
            len(set(merchants[lo_day:hi])) if lo_day < i else 1,
            distinct_countries,
            1.0 if first_time else 0.0,
            self._travel_kmh(t, i, lat, lon, floor) if located else _NAN,
            1.0 if (t // HOUR_MS) % 24 < 6 else 0.0,
            1.0 if (t // DAY_MS + 3) % 7 >= 5 else 0.0,  # 1970-01-01 was a Thursday
            amount,
        )

        # Count e into the buckets. Only a late event can land before the cached day (an
        # in-time one replaced the cache with its own day): then it voids the cache.
        if late and self._month_cache is not None and month_key < self._month_cache[0]:
            self._month_cache = None
        self._week.add(week_key, units)
        self._month.add(month_key, units)
        return result, late

    def _insert_country(self, i: int, country: str | None) -> None:
        countries = self._countries
        if countries is None:
            countries = self._countries = [None] * (len(self._log.times) - 1)
        countries.insert(i, country)

    def _insert_coords(self, i: int, lat: float, lon: float) -> None:
        coords = self._coords
        if coords is None:
            coords = self._coords = array("d", [_NAN]) * (2 * (len(self._log.times) - 1))
        coords[2 * i : 2 * i] = array("d", (lat, lon))

    def _month_closed(self, key: int, late: bool) -> tuple[int, int, int, float]:
        closed = (key, *self._month.spread_totals(key - MONTH_BUCKETS + 1, key))
        if not late:  # nothing closed yet is as quick to find again as to cache (and smaller)
            self._month_cache = closed if closed[1] else None
        return closed

    def _open_spread(self, key: int, lo: int, i: int, count: int, total: int) -> float:
        """m2 of the prior events of e's own day (raw indices ``lo..i-1``)."""
        stored_n, stored_m2 = self._month.get(key)
        if stored_n == count:  # nothing with a later time in e's day: the bucket is exact
            return stored_m2
        cum, base = self._log.cum, self._log.base
        previous = cum[lo - 1] if lo else base
        squares = 0
        for j in range(lo, i):
            gap = (cum[j] - previous) * count - total
            squares += gap * gap
            previous = cum[j]
        return squares / (count * count)

    def _travel_kmh(self, t: int, i: int, lat: float, lon: float, floor: int) -> float:
        times, coords = self._log.times, self._coords
        if coords is None:  # cannot happen: e is located, so coordinates are kept
            return _NAN
        j = i - 1
        while j >= 0 and times[j] > floor:
            prev_lat = coords[2 * j]
            if prev_lat == prev_lat:
                prev_t, prev_lon = times[j], coords[2 * j + 1]
                break
            j -= 1
        else:
            last = None if self._archive is None else self._archive.last_loc
            if last is None or not floor < last[0] <= t:
                return _NAN
            prev_t, prev_lat, prev_lon = last
        hours = (t - prev_t if t > prev_t else SECOND_MS) / HOUR_MS
        return haversine_km(prev_lat, prev_lon, lat, lon) / hours

    def _prune(self, newest_kept: int) -> None:
        """Drop what no event within the lateness can need (``newest_kept`` = newest - L)."""
        times = self._log.times
        if times and times[0] <= newest_kept - RAW_KEEP_MS:
            stale = bisect_right(times, newest_kept - RAW_KEEP_MS)
            # In pairs at least: a sparse user then archives every other event, not each.
            if stale >= PRUNE_BATCH or (stale > 1 and 4 * stale >= len(times)):
                self._archive_raw(stale)
        keys = self._week.keys
        first = newest_kept // WEEK_BUCKET_MS - WEEK_BUCKETS + 1
        if keys and keys[0] < first:
            self._week.drop_before(first)
        keys = self._month.keys
        first = newest_kept // MONTH_BUCKET_MS - MONTH_BUCKETS + 1
        if keys and keys[0] < first:
            self._month.drop_before(first)
        archive = self._archive
        horizon = newest_kept - LONGEST_USER_MS
        if archive is not None and archive.last_t <= horizon:  # the archive is all past
            self._archive = None
        elif archive is not None and (
            (archive.times and archive.times[0] <= horizon)
            or (archive.last_loc is not None and archive.last_loc[0] <= horizon)
        ):
            archive.forget(horizon)

    def _archive_raw(self, stale: int) -> None:
        """Move the first ``stale`` raw events to the archive."""
        log, coords = self._log, self._coords
        if self._archive is None:
            self._archive = Archive()
        self._archive.record(log.times, log.ids, coords, stale)
        log.drop_front(stale)
        if self._countries is not None:
            del self._countries[:stale]
            if self._countries.count(None) == len(self._countries):
                self._countries = None
        if coords is not None:
            del coords[: 2 * stale]
            if not any(value == value for value in coords):
                self._coords = None

    def __getstate__(self) -> _UserState:
        return (
            self._log.snapshot(),
            self._countries,
            None if self._coords is None else self._coords.tobytes(),
            self._week.snapshot(),
            self._month.snapshot(),
            (_NO_ARCHIVE if self._archive is None else self._archive.snapshot()),
        )

    def __setstate__(self, state: _UserState) -> None:
        log, countries, coords, week, month, archive = state
        self._log = EventLog.restore(log)
        self._countries = None
        if countries is not None:
            self._countries = [None if c is None else sys.intern(c) for c in countries]
        self._coords = None
        if coords is not None:
            self._coords = array("d")
            self._coords.frombytes(coords)
        self._week = PrefixBuckets.restore(week)
        self._month = SpreadBuckets.restore(month)
        self._archive = None if archive == _NO_ARCHIVE else Archive.restore(archive)
        self._month_cache = None
