"""Brute-force definitions of every velocity feature, written from the docstrings alone.

Each feature is recomputed from the full list of events seen so far, with exact
rational arithmetic, so the oracle shares no code (and no shortcut) with the states.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from fractions import Fraction

from operators.velocity import VelocityEvent

MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000
MONTH = 30 * DAY
EXACT_WINDOWS = (("1m", MINUTE), ("10m", 10 * MINUTE), ("1h", HOUR), ("24h", DAY))
BUCKETED_WINDOWS = (("7d", 7 * HOUR, 24), ("30d", 30 * HOUR, 24))
EARTH_RADIUS_KM = 6371.0088
NAN = math.nan


def units(event: VelocityEvent) -> int:
    """The amount in 1/10,000 (test amounts are generated with at most 4 decimals)."""
    return round(event.amount * 10_000)


def _located(event: VelocityEvent) -> bool:
    return event.lat is not None and event.lon is not None


def _in_bucketed(event: VelocityEvent, other: VelocityEvent, size: int, count: int) -> bool:
    return other.event_ms <= event.event_ms and (
        other.event_ms // size >= event.event_ms // size - (count - 1)
    )


def _put_window(out: dict[str, float], name: str, window: list[VelocityEvent]) -> None:
    total = sum(units(x) for x in window)
    out[f"user_count_{name}"] = float(len(window))
    out[f"user_amount_sum_{name}"] = float(Fraction(total, 10_000))
    out[f"user_amount_mean_{name}"] = float(Fraction(total, 10_000 * len(window)))


def _haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, h)))


def user_features(history: list[VelocityEvent], event: VelocityEvent) -> dict[str, float]:
    """Features of ``event`` given the user's events seen before it (arrival order)."""
    t = event.event_ms
    seen = [*history, event]
    out: dict[str, float] = {}
    for name, horizon in EXACT_WINDOWS:
        _put_window(out, name, [x for x in seen if t - horizon < x.event_ms <= t])
    for name, size, count in BUCKETED_WINDOWS:
        _put_window(out, name, [x for x in seen if _in_bucketed(event, x, size, count)])

    recent = [x for x in history if t - MONTH < x.event_ms <= t]
    out["user_seconds_since_prev"] = (
        float(Fraction(t - max(x.event_ms for x in recent), 1000)) if recent else NAN
    )

    prior = [units(x) for x in history if _in_bucketed(event, x, 30 * HOUR, 24)]
    amount = units(event)
    if prior and sum(prior):
        out["user_amount_ratio_30d"] = float(Fraction(amount * len(prior), sum(prior)))
    else:
        out["user_amount_ratio_30d"] = NAN
    out["user_amount_zscore_30d"] = NAN
    if len(prior) >= 2:
        mean = Fraction(sum(prior), len(prior))
        variance = sum((x - mean) ** 2 for x in prior) / (len(prior) - 1)
        if variance:
            out["user_amount_zscore_30d"] = float(amount - mean) / math.sqrt(float(variance))

    hour = [x for x in seen if t - HOUR < x.event_ms <= t]
    day = [x for x in seen if t - DAY < x.event_ms <= t]
    out["user_distinct_merchants_1h"] = float(len({x.merchant_id for x in hour}))
    out["user_distinct_merchants_24h"] = float(len({x.merchant_id for x in day}))
    out["user_distinct_countries_24h"] = float(
        len({x.country for x in day if x.country is not None})
    )
    out["user_first_time_merchant"] = (
        0.0 if any(x.merchant_id == event.merchant_id for x in recent) else 1.0
    )

    out["user_travel_kmh"] = NAN
    located = [(x.event_ms, k, x) for k, x in enumerate(recent) if _located(x)]
    if _located(event) and located:
        prev_t, _, prev = max(located)
        assert prev.lat is not None and prev.lon is not None
        assert event.lat is not None and event.lon is not None
        hours = (t - prev_t if t > prev_t else 1000) / HOUR
        out["user_travel_kmh"] = _haversine(prev.lat, prev.lon, event.lat, event.lon) / hours

    moment = datetime.fromtimestamp(t / 1000, tz=UTC)
    out["is_night"] = 1.0 if moment.hour < 6 else 0.0
    out["is_weekend"] = 1.0 if moment.weekday() >= 5 else 0.0
    out["amount"] = event.amount
    return out


def merchant_features(history: list[VelocityEvent], event: VelocityEvent) -> dict[str, float]:
    """Features of ``event`` given the merchant's events seen before it (arrival order)."""
    t = event.event_ms
    seen = [*history, event]
    hour = [x for x in seen if t - HOUR < x.event_ms <= t]
    day = [x for x in seen if t - DAY < x.event_ms <= t]
    return {
        "merchant_count_1h": float(len(hour)),
        "merchant_count_24h": float(len(day)),
        "merchant_distinct_users_1h": float(len({x.user_id for x in hour})),
        "merchant_amount_mean_24h": float(Fraction(sum(units(x) for x in day), 10_000 * len(day))),
    }


#: Features compared with a relative tolerance (square roots and trigonometry); every
#: other feature must be bit-for-bit equal to the exact value, correctly rounded.
APPROXIMATE = frozenset({"user_amount_zscore_30d", "user_travel_kmh"})


def mismatches(got: dict[str, float], want: dict[str, float]) -> list[str]:
    """Names whose values differ (NaN equals NaN), with both values, for the message."""
    assert list(got) == list(want) or set(got) == set(want)
    bad = []
    for name, expected in want.items():
        actual = got[name]
        if math.isnan(expected) or math.isnan(actual):
            same = math.isnan(expected) and math.isnan(actual)
        elif name in APPROXIMATE:
            same = math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-9)
        else:
            same = actual == expected
        if not same:
            bad.append(f"{name}: got {actual!r}, want {expected!r}")
    return bad
