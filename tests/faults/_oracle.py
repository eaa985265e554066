"""Independent answers the fault tests check the scorer against.

- :func:`kafka_partition`: where the producer's partitioner (librdkafka
  ``murmur2_random``, Kafka's Java ``murmur2``) puts a key, so that a test can give the
  users of one partition a shared set of merchants: every key's events then have one
  arrival order (the partition's), whatever the interleaving of partitions, and a run can
  be compared with another or with the oracle exactly.
- :func:`velocity_features`: every user and merchant velocity feature of a whole stream,
  by brute force: the unit tests' velocity oracle (``tests/unit/operators/velocity/
  _oracle.py``, written from the docstrings, sharing no code with the states) applied to
  every distinct event in its key's arrival order.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from operators.velocity import VelocityEvent
from tests.doubles import kafka_partition
from tests.unit.operators.velocity._oracle import (
    APPROXIMATE,
    merchant_features,
    mismatches,
    user_features,
)

__all__ = [
    "APPROXIMATE",
    "feature_mismatches",
    "kafka_partition",
    "oracle_event",
    "velocity_features",
]


def oracle_event(payload: dict[str, Any]) -> VelocityEvent:
    """A produced payload (``event_time`` in epoch ms, ``amount`` a decimal string)."""
    located = payload.get("lat") is not None and payload.get("lon") is not None
    return VelocityEvent(
        tx_id=payload["tx_id"],
        event_ms=int(payload["event_time"]),
        amount=float(Decimal(payload["amount"])),
        merchant_id=payload["merchant_id"],
        user_id=payload["user_id"],
        country=payload.get("country"),
        lat=payload["lat"] if located else None,
        lon=payload["lon"] if located else None,
    )


def velocity_features(arrivals: Iterable[VelocityEvent]) -> dict[str, dict[str, float]]:
    """Features of each distinct tx_id, given every key's events in its arrival order.

    A repeated tx_id is one event: only its first arrival counts and has features.
    """
    by_user: dict[str, list[VelocityEvent]] = defaultdict(list)
    by_merchant: dict[str, list[VelocityEvent]] = defaultdict(list)
    features: dict[str, dict[str, float]] = {}
    for e in arrivals:
        if e.tx_id in features:
            continue
        users, merchants = by_user[e.user_id], by_merchant[e.merchant_id]
        features[e.tx_id] = user_features(users, e) | merchant_features(merchants, e)
        users.append(e)
        merchants.append(e)
    return features


def feature_mismatches(got: dict[str, float | None], want: dict[str, float]) -> list[str]:
    """``name: got, want`` for each feature of ``want`` that ``got`` differs on.

    A decision's JSON carries NaN as null; the comparison is the unit oracle's (exact,
    but ``APPROXIMATE`` features within a relative 1e-9).
    """
    numbers: dict[str, float] = {}
    for name in want:
        value = got[name]
        numbers[name] = math.nan if value is None else value
    return mismatches(numbers, want)
