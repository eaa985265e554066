"""The scorer's path into the windows equals the event path, feature for feature."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from operators.velocity import MerchantVelocity, UserVelocity, VelocityEvent
from schemas import Transaction
from schemas._types import epoch_ms


def _transactions(count: int, seed: int) -> list[Transaction]:
    rng = random.Random(seed)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    out = []
    for i in range(count):
        located = rng.random() < 0.7
        out.append(
            Transaction(
                tx_id=f"t{i}",
                user_id=f"u{rng.randrange(3)}",
                merchant_id=f"m{rng.randrange(5)}",
                amount=Decimal(rng.randrange(1, 500_000)) / 100,
                country=rng.choice([None, "FR", "DE"]),
                lat=rng.uniform(-60, 60) if located else None,
                lon=rng.uniform(-170, 170) if located else None,
                # out of order now and then, days apart sometimes
                event_time=start + timedelta(minutes=rng.randrange(0, 60 * 24 * 40)),
            )
        )
    return out


def _same(left: dict[str, float], right: dict[str, float]) -> bool:
    return left.keys() == right.keys() and all(
        (math.isnan(a) and math.isnan(b)) or a == b
        for a, b in zip(left.values(), right.values(), strict=True)
    )


def test_update_transaction_equals_update_of_the_event() -> None:
    by_event, by_tx = UserVelocity(), UserVelocity()
    merchants_event, merchants_tx = MerchantVelocity(), MerchantVelocity()
    for tx in _transactions(400, seed=3):
        event, event_ms = VelocityEvent.from_transaction(tx), epoch_ms(tx.event_time)
        expected, got = by_event.update(event), by_tx.update_transaction(tx, event_ms)
        assert _same(expected.features, got.features)
        assert expected.late == got.late
        expected = merchants_event.update(event)
        got = merchants_tx.update_transaction(tx, event_ms)
        assert _same(expected.features, got.features)
        assert expected.late == got.late
