"""What the generator sends: simulator rows as real transactions, stamped with the send time."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from schemas import decode_transaction
from streams.bench._generator import GeneratorPlan, _encode


def simulator_row() -> dict[str, object]:
    return {
        "tx_id": "tx-7-r1-n0", "user_id": "u000791", "card_id": "card-94883515",
        "merchant_id": "m00157", "mcc": "5814", "amount": "3.44", "currency": "USD",
        "country": "US", "lat": 34.01397, "lon": -118.2068, "channel": "pos",
        "device_id": None, "event_time": datetime(2030, 1, 1, tzinfo=UTC),
        "schema_version": 1, "label": 1, "pattern": "card_testing",
    }  # fmt: skip


def test_a_row_becomes_a_valid_transaction_keyed_by_user_and_stamped_when_sent():
    key, value = _encode(simulator_row(), sent_ms=1_800_000_000_123)
    payload = orjson.loads(value)
    assert key == b"u000791"
    assert payload["event_time"] == 1_800_000_000_123  # not the simulated 2030 time
    assert "label" not in payload
    assert "pattern" not in payload
    assert "device_id" not in payload
    tx = decode_transaction(value)
    assert tx.tx_id == "tx-7-r1-n0"
    assert int(tx.event_time.timestamp() * 1000) == 1_800_000_000_123


def test_the_schedule_holds_rate_times_duration_transactions():
    assert GeneratorPlan(topic="t", rate=200.0, duration_s=5.0).events == 1000
    assert GeneratorPlan(topic="t", rate=333.3, duration_s=3.0).events == 1000
