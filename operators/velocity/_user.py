"""Velocity state of one user: every per-user feature, at event time, in one pass.

Definitions (``e`` is the event being scored, "seen" means already processed by this
state, in arrival order; ``e`` itself counts in every window):

- Exact windows (1m, 10m, 1h, 24h): seen events and ``e`` with ``e.t - H < t <= e.t``.
  An event seen earlier but with a later event time never counts.
- Bucketed windows: 7d uses 28 buckets of 6 h, 30d uses 30 buckets of one UTC day
  (bucket ``k = t // B``, aligned on the epoch). The window of ``e`` holds the seen events
  and ``e`` with ``t <= e.t`` and ``t // B >= e.t // B - (N - 1)``: the buckets before
  ``e``'s plus ``e``'s own bucket up to ``e.t``. It always lies inside the exact sliding
  window and covers at least its last ``H - B``.
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

State: raw events for 24 h + lateness (time, prefix sums, merchant, and country and
coordinates only once the user has had one), 6 h and daily buckets for 30 days +
lateness, and for events that left the raw log the last time per merchant, the last time,
and the last location (for 30 days + lateness).
"""

from __future__ import annotations

import math
import sys
from array import array
from bisect import bisect_left, bisect_right

from operators.velocity._buckets import Buckets, BucketsState, merge_spread
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
from operators.velocity._log import EventLog, LogState
from operators.velocity._size import deep_size

__all__ = ["UserVelocity"]

_NAN = math.nan
_TEN_MINUTES_MS = 10 * MINUTE_MS
_UserState = tuple[
    LogState,
    list[str | None] | None,
    bytes | None,
    BucketsState,
    BucketsState,
    list[str],
    bytes,
    int,
    tuple[int, float, float] | None,
]


class UserVelocity:
    """All velocity state of ONE user; ``update`` returns the features of each event."""

    __slots__ = (
        "_coords",
        "_countries",
        "_last_loc",
        "_last_t",
        "_log",
        "_month",
        "_month_cache",
        "_seen_merchants",
        "_seen_times",
        "_week",
        "_week_cache",
    )

    def __init__(self, lateness_ms: int = DEFAULT_LATENESS_MS) -> None:
        self._log = EventLog(lateness_ms)
        self._countries: list[str | None] | None = None  # only once a country was seen
        self._coords: array[float] | None = None  # lat, lon pairs; only once located
        self._week = Buckets(with_spread=False)
        self._month = Buckets(with_spread=True)
        # Merchants, times and location of events that left the raw log (30 days).
        self._seen_merchants: list[str] = []
        self._seen_times = array("q")  # ascending, parallel to _seen_merchants
        self._last_t = NEVER
        self._last_loc: tuple[int, float, float] | None = None
        # Closed-bucket aggregates for the current bucket key (never for late events).
        self._week_cache: tuple[int, int, int] | None = None
        self._month_cache: tuple[int, int, int, float] | None = None

    def update(self, event: VelocityEvent) -> WindowResult:
        """Count ``event`` in and return its features (``USER_FEATURES`` order)."""
        lat = _NAN if event.lat is None else event.lat
        lon = _NAN if event.lon is None else event.lon
        values, late = self.observe(
            event.event_ms,
            round(event.amount * AMOUNT_SCALE),
            event.amount,
            event.merchant_id,
            event.country,
            lat,
            lon,
        )
        return WindowResult(dict(zip(USER_FEATURES, map(float, values), strict=True)), late)

    def is_idle(self, now_ms: int) -> bool:
        """True when no event is within 30 days + lateness of ``now_ms``: evict the state."""
        log = self._log
        return now_ms - log._max_t > LONGEST_USER_MS + log._lateness

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
        late = t < log._max_t - log._lateness
        if t > log._max_t:
            log._max_t = t
            self._prune()
        i = log._insert(t, units, merchant)
        located = lat == lat and lon == lon  # NaN is the only value unequal to itself
        if country is not None or self._countries is not None:
            self._insert_country(i, country)
        if located or self._coords is not None:
            self._insert_coords(i, lat, lon)

        times, cum, base, merchants = log._times, log._cum, log._base, log._ids
        hi = i + 1
        top = cum[i]
        before = cum[i - 1] if i else base  # prefix sum of everything before e
        lo_day = bisect_right(times, t - DAY_MS, 0, i)
        lo_hour = bisect_right(times, t - HOUR_MS, lo_day, i)
        lo_10m = bisect_right(times, t - _TEN_MINUTES_MS, lo_hour, i)
        lo_min = bisect_right(times, t - MINUTE_MS, lo_10m, i)
        sum_day = top - (cum[lo_day - 1] if lo_day else base)
        sum_hour = top - (cum[lo_hour - 1] if lo_hour else base)
        sum_10m = top - (cum[lo_10m - 1] if lo_10m else base)
        sum_min = top - (cum[lo_min - 1] if lo_min else base)

        # Bucketed windows: closed buckets from the stores, e's own bucket from raw events.
        week_key = t // WEEK_BUCKET_MS
        lo_week = bisect_left(times, week_key * WEEK_BUCKET_MS, lo_day, i)
        week_n, week_s = self._week_closed(week_key, late)
        count_week = week_n + hi - lo_week
        sum_week = week_s + top - (cum[lo_week - 1] if lo_week else base)

        month_key = t // MONTH_BUCKET_MS
        lo_month = bisect_left(times, month_key * MONTH_BUCKET_MS, lo_day, i)
        open_n = i - lo_month  # prior events in e's own day
        open_s = before - (cum[lo_month - 1] if lo_month else base)
        open_m2 = self._open_spread(month_key, lo_month, i, open_n, open_s)
        closed_n, closed_s, closed_m2 = self._month_closed(month_key, late)
        prior_n = closed_n + open_n
        prior_s = closed_s + open_s
        prior_m2 = merge_spread(closed_n, closed_s, closed_m2, open_n, open_s, open_m2)
        ratio = units * prior_n / prior_s if prior_n and prior_s else _NAN
        if prior_n >= 2 and prior_m2 > 0.0:
            zscore = (units * prior_n - prior_s) / (prior_n * math.sqrt(prior_m2 / (prior_n - 1)))
        else:
            zscore = _NAN

        floor = t - LONGEST_USER_MS
        prev = times[i - 1] if i else NEVER
        if prev < self._last_t <= t:
            prev = self._last_t
        since_prev = (t - prev) / SECOND_MS if prev > floor else _NAN

        countries = self._countries
        if countries is None:
            distinct_countries = 0
        else:
            known = set(countries[lo_day:hi])
            known.discard(None)
            distinct_countries = len(known)

        result = (
            hi - lo_min,
            sum_min / AMOUNT_SCALE,
            sum_min / ((hi - lo_min) * AMOUNT_SCALE),
            hi - lo_10m,
            sum_10m / AMOUNT_SCALE,
            sum_10m / ((hi - lo_10m) * AMOUNT_SCALE),
            hi - lo_hour,
            sum_hour / AMOUNT_SCALE,
            sum_hour / ((hi - lo_hour) * AMOUNT_SCALE),
            hi - lo_day,
            sum_day / AMOUNT_SCALE,
            sum_day / ((hi - lo_day) * AMOUNT_SCALE),
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
            0.0 if self._seen_merchant_before(merchant, i, floor) else 1.0,
            self._travel_kmh(t, i, lat, lon, floor) if located else _NAN,
            1.0 if (t // HOUR_MS) % 24 < 6 else 0.0,
            1.0 if (t // DAY_MS + 3) % 7 >= 5 else 0.0,  # 1970-01-01 was a Thursday
            amount,
        )

        if self._week_cache is not None and week_key < self._week_cache[0]:
            self._week_cache = None
        if self._month_cache is not None and month_key < self._month_cache[0]:
            self._month_cache = None
        self._week.add(week_key, units)
        self._month.add(month_key, units)
        return result, late

    def _insert_country(self, i: int, country: str | None) -> None:
        countries = self._countries
        if countries is None:
            countries = self._countries = [None] * (len(self._log._times) - 1)
        countries.insert(i, country)

    def _insert_coords(self, i: int, lat: float, lon: float) -> None:
        coords = self._coords
        if coords is None:
            coords = self._coords = array("d", [_NAN]) * (2 * (len(self._log._times) - 1))
        coords[2 * i : 2 * i] = array("d", (lat, lon))

    def _week_closed(self, key: int, late: bool) -> tuple[int, int]:
        cache = self._week_cache
        if cache is not None and cache[0] == key and not late:
            return cache[1], cache[2]
        count, total = self._week.totals(key - WEEK_BUCKETS + 1, key)
        if not late:
            self._week_cache = (key, count, total)
        return count, total

    def _month_closed(self, key: int, late: bool) -> tuple[int, int, float]:
        cache = self._month_cache
        if cache is not None and cache[0] == key and not late:
            return cache[1], cache[2], cache[3]
        count, total, m2 = self._month.spread_totals(key - MONTH_BUCKETS + 1, key)
        if not late:
            self._month_cache = (key, count, total, m2)
        return count, total, m2

    def _open_spread(self, key: int, lo: int, i: int, count: int, total: int) -> float:
        """m2 of the prior events of e's own day (raw indices ``lo..i-1``)."""
        if count < 2:
            return 0.0
        stored_n, _, stored_m2 = self._month.get(key)
        if stored_n == count:  # nothing with a later time in e's day: the bucket is exact
            return stored_m2
        cum, base = self._log._cum, self._log._base
        previous = cum[lo - 1] if lo else base
        squares = 0
        for j in range(lo, i):
            gap = (cum[j] - previous) * count - total
            squares += gap * gap
            previous = cum[j]
        return squares / (count * count)

    def _seen_merchant_before(self, merchant: str, i: int, floor: int) -> bool:
        times, merchants = self._log._times, self._log._ids
        if times[0] > floor and i == len(times) - 1:
            seen = merchants.count(merchant) > 1  # e itself is the last one
        else:
            seen = merchant in merchants[bisect_right(times, floor, 0, i) : i]
        if seen or merchant not in self._seen_merchants:
            return seen
        last = self._seen_times[self._seen_merchants.index(merchant)]
        return floor < last <= times[i]

    def _travel_kmh(self, t: int, i: int, lat: float, lon: float, floor: int) -> float:
        times, coords = self._log._times, self._coords
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
            if self._last_loc is None or not floor < self._last_loc[0] <= t:
                return _NAN
            prev_t, prev_lat, prev_lon = self._last_loc
        hours = (t - prev_t if t > prev_t else SECOND_MS) / HOUR_MS
        return haversine_km(prev_lat, prev_lon, lat, lon) / hours

    def _prune(self) -> None:
        log = self._log
        newest_kept = log._max_t - log._lateness
        stale = log._stale_count(RAW_KEEP_MS)
        if stale:
            self._archive(stale)
            log._drop_front(stale)
            if self._countries is not None:
                del self._countries[:stale]
                if self._countries.count(None) == len(self._countries):
                    self._countries = None
            if self._coords is not None:
                del self._coords[: 2 * stale]
                if not any(value == value for value in self._coords):
                    self._coords = None
        self._week.drop_before(newest_kept // WEEK_BUCKET_MS - WEEK_BUCKETS + 1)
        self._month.drop_before(newest_kept // MONTH_BUCKET_MS - MONTH_BUCKETS + 1)
        horizon = newest_kept - LONGEST_USER_MS
        seen_times = self._seen_times
        if seen_times and seen_times[0] <= horizon:
            gone = bisect_right(seen_times, horizon)
            del seen_times[:gone]
            del self._seen_merchants[:gone]
        if self._last_t <= horizon:
            self._last_t = NEVER
        if self._last_loc is not None and self._last_loc[0] <= horizon:
            self._last_loc = None

    def _archive(self, stale: int) -> None:
        """Remember what the first ``stale`` raw events still mean for 30-day features."""
        times, merchants, coords = self._log._times, self._log._ids, self._coords
        names, stamps = self._seen_merchants, self._seen_times
        for j in range(stale):
            t, merchant = times[j], merchants[j]
            self._last_t = max(self._last_t, t)
            if coords is not None and coords[2 * j] == coords[2 * j]:
                if self._last_loc is None or t >= self._last_loc[0]:
                    self._last_loc = (t, coords[2 * j], coords[2 * j + 1])
            if merchant in names:
                k = names.index(merchant)
                if stamps[k] >= t:
                    continue
                del names[k]
                del stamps[k]
            k = bisect_right(stamps, t)
            names.insert(k, merchant)
            stamps.insert(k, t)

    def __getstate__(self) -> _UserState:
        return (
            self._log._log_state(),
            self._countries,
            None if self._coords is None else self._coords.tobytes(),
            self._week.snapshot(),
            self._month.snapshot(),
            self._seen_merchants,
            self._seen_times.tobytes(),
            self._last_t,
            self._last_loc,
        )

    def __setstate__(self, state: _UserState) -> None:
        log_state, countries, coords, week, month, names, stamps, last_t, last_loc = state
        self._log = EventLog.__new__(EventLog)
        self._log._restore_log(log_state)
        self._countries = None
        if countries is not None:
            self._countries = [None if c is None else sys.intern(c) for c in countries]
        self._coords = None
        if coords is not None:
            self._coords = array("d")
            self._coords.frombytes(coords)
        self._week = Buckets.restore(week)
        self._month = Buckets.restore(month)
        self._seen_merchants = [sys.intern(name) for name in names]
        self._seen_times = array("q")
        self._seen_times.frombytes(stamps)
        self._last_t = last_t
        self._last_loc = last_loc
        self._week_cache = None
        self._month_cache = None
