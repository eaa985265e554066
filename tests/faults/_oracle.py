"""Independent answers the fault tests check the scorer against.

- :func:`kafka_partition`: where the producer's partitioner (librdkafka
  ``murmur2_random``, Kafka's Java ``murmur2``) puts a key, so that a test can give the
  users of one partition a shared set of merchants: every key's events then have one
  arrival order (the partition's), whatever the interleaving of partitions, and a run can
  be compared with another or with the oracle exactly.
- :func:`velocity_features`: every user and merchant velocity feature by brute force,
  written from the definitions in ``operators/velocity`` (``UserVelocity`` and
  ``MerchantVelocity`` docstrings) and sharing no code with them: each window is a list
  comprehension over every distinct event seen before, in exact rational arithmetic.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

__all__ = [
    "APPROXIMATE",
    "OracleEvent",
    "feature_mismatches",
    "kafka_partition",
    "velocity_features",
]

SECOND, MINUTE, HOUR, DAY = 1_000, 60_000, 3_600_000, 86_400_000
_EXACT_WINDOWS = (("1m", MINUTE), ("10m", 10 * MINUTE), ("1h", HOUR), ("24h", DAY))
# 7d: 24 epoch-aligned buckets of 7 h; 30d: 24 of 30 h (e's own bucket up to e's time).
_BUCKETED_WINDOWS = (("7d", 7 * HOUR), ("30d", 30 * HOUR))
_BUCKETS = 24
_LOOK_BACK = 30 * DAY  # previous transaction, first time at a merchant, travel
_EARTH_RADIUS_KM = 6371.0088

#: Features computed with square roots and trigonometry: compared with a relative
#: tolerance. Every other feature is a correctly rounded exact value: compared exactly.
APPROXIMATE = frozenset({"user_amount_zscore_30d", "user_travel_kmh"})


def kafka_partition(key: bytes, partitions: int) -> int:
    """The partition librdkafka's ``murmur2_random`` partitioner gives a non-null key."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    length = len(key)
    h = (0x9747B28C ^ length) & mask
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(key[i : i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    tail = length % 4
    base = length - tail
    if tail == 3:
        h ^= key[base + 2] << 16
    if tail >= 2:
        h ^= key[base + 1] << 8
    if tail >= 1:
        h ^= key[base]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class OracleEvent:
    """One distinct transaction as the windows define it."""

    tx_id: str
    user_id: str
    merchant_id: str
    t: int  # event time, epoch ms
    units: int  # amount in 1/10,000
    country: str | None
    lat: float | None
    lon: float | None

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> OracleEvent:
        """From a produced payload (``event_time`` in epoch ms, ``amount`` a decimal string)."""
        located = payload.get("lat") is not None and payload.get("lon") is not None
        return cls(
            tx_id=payload["tx_id"],
            user_id=payload["user_id"],
            merchant_id=payload["merchant_id"],
            t=int(payload["event_time"]),
            units=int(Decimal(payload["amount"]) * 10_000),
            country=payload.get("country"),
            lat=payload["lat"] if located else None,
            lon=payload["lon"] if located else None,
        )


def _window(name: str, events: list[OracleEvent]) -> dict[str, float]:
    total = sum(e.units for e in events)
    return {
        f"user_count_{name}": float(len(events)),
        f"user_amount_sum_{name}": float(Fraction(total, 10_000)),
        f"user_amount_mean_{name}": float(Fraction(total, 10_000 * len(events))),
    }


def _in_bucketed(e: OracleEvent, x: OracleEvent, size: int) -> bool:
    return x.t <= e.t and x.t // size >= e.t // size - (_BUCKETS - 1)


def _km(a: OracleEvent, b: OracleEvent) -> float:
    assert a.lat is not None and a.lon is not None and b.lat is not None and b.lon is not None
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    h = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(b.lon - a.lon) / 2) ** 2
    )
    return 2 * _EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, h)))


def _user(seen: list[OracleEvent], e: OracleEvent) -> dict[str, float]:
    """``e``'s user features; ``seen`` is the user's events that arrived before ``e``."""
    t = e.t
    window = [*seen, e]
    out: dict[str, float] = {}
    for name, horizon in _EXACT_WINDOWS:
        out |= _window(name, [x for x in window if t - horizon < x.t <= t])
    for name, size in _BUCKETED_WINDOWS:
        out |= _window(name, [x for x in window if _in_bucketed(e, x, size)])
    recent = [x for x in seen if t - _LOOK_BACK < x.t <= t]
    out["user_seconds_since_prev"] = (
        float(Fraction(t - max(x.t for x in recent), SECOND)) if recent else math.nan
    )
    prior = [x.units for x in seen if _in_bucketed(e, x, 30 * HOUR)]
    ratio = math.nan
    if prior and sum(prior):
        ratio = float(Fraction(e.units * len(prior), sum(prior)))
    out["user_amount_ratio_30d"] = ratio
    zscore = math.nan
    if len(prior) >= 2:
        mean = Fraction(sum(prior), len(prior))
        variance = sum((x - mean) ** 2 for x in prior) / (len(prior) - 1)
        if variance:
            zscore = float(e.units - mean) / math.sqrt(variance)
    out["user_amount_zscore_30d"] = zscore
    hour = [x for x in window if t - HOUR < x.t <= t]
    day = [x for x in window if t - DAY < x.t <= t]
    out["user_distinct_merchants_1h"] = float(len({x.merchant_id for x in hour}))
    out["user_distinct_merchants_24h"] = float(len({x.merchant_id for x in day}))
    out["user_distinct_countries_24h"] = float(len({x.country for x in day} - {None}))
    out["user_first_time_merchant"] = float(all(x.merchant_id != e.merchant_id for x in recent))
    travel = math.nan
    located = [(x.t, k) for k, x in enumerate(recent) if x.lat is not None]
    if e.lat is not None and located:
        _, k = max(located)  # the latest; among equal times the one seen last
        before = recent[k]
        hours = Fraction(t - before.t if t > before.t else SECOND, HOUR)
        travel = _km(before, e) / float(hours)
    out["user_travel_kmh"] = travel
    moment = datetime.fromtimestamp(t / 1000, tz=UTC)
    out["is_night"] = float(moment.hour < 6)
    out["is_weekend"] = float(moment.weekday() >= 5)
    out["amount"] = float(Fraction(e.units, 10_000))
    return out


def _merchant(seen: list[OracleEvent], e: OracleEvent) -> dict[str, float]:
    """``e``'s merchant features; ``seen`` is the merchant's events that arrived before."""
    window = [*seen, e]
    hour = [x for x in window if e.t - HOUR < x.t <= e.t]
    day = [x for x in window if e.t - DAY < x.t <= e.t]
    return {
        "merchant_count_1h": float(len(hour)),
        "merchant_count_24h": float(len(day)),
        "merchant_distinct_users_1h": float(len({x.user_id for x in hour})),
        "merchant_amount_mean_24h": float(Fraction(sum(x.units for x in day), 10_000 * len(day))),
    }


def velocity_features(arrivals: Iterable[OracleEvent]) -> dict[str, dict[str, float]]:
    """Features of each distinct tx_id, given every key's events in its arrival order.

    A repeated tx_id is one event: only its first arrival counts and has features.
    """
    by_user: dict[str, list[OracleEvent]] = defaultdict(list)
    by_merchant: dict[str, list[OracleEvent]] = defaultdict(list)
    features: dict[str, dict[str, float]] = {}
    for e in arrivals:
        if e.tx_id in features:
            continue
        features[e.tx_id] = _user(by_user[e.user_id], e) | _merchant(by_merchant[e.merchant_id], e)
        by_user[e.user_id].append(e)
        by_merchant[e.merchant_id].append(e)
    return features


def feature_mismatches(got: dict[str, float | None], want: dict[str, float]) -> list[str]:
    """``name: got, want`` for each feature of ``want`` that ``got`` differs on.

    A decision's JSON carries NaN as null. Exact features must be equal to the bit; the
    ``APPROXIMATE`` ones within a relative 1e-9.
    """
    bad = []
    for name, expected in want.items():
        actual = got.get(name, "absent")
        if math.isnan(expected):
            same = actual is None
        elif not isinstance(actual, int | float):
            same = False
        elif name in APPROXIMATE:
            same = math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-9)
        else:
            same = actual == expected
        if not same:
            bad.append(f"{name}: got {actual!r}, want {expected!r}")
    return bad
