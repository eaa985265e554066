"""Simulated rows satisfy the real Transaction contract, as the scoring pipeline reads it."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime

import orjson

from models.simulator import SimulatorConfig, live_events, simulate_history
from schemas import Transaction, decode_transaction

_LABELS = ("label", "pattern")


def _without_labels(row: dict[str, object]) -> dict[str, object]:
    """Drop the labels, and turn pandas' missing values into the contract's absent ones."""
    return {
        key: None if isinstance(value, float) and math.isnan(value) else value
        for key, value in row.items()
        if key not in _LABELS and value is not None
    }


def test_every_simulated_row_is_a_valid_transaction() -> None:
    frame = simulate_history(SimulatorConfig(users=150, merchants=60, days=7, seed=13))
    assert set(frame["pattern"]) > {""}  # fraud rows are checked too
    records = frame.to_dict("records")
    for record in records:
        transaction = Transaction.model_validate(_without_labels(record))
        assert str(transaction.amount) == record["amount"]
        assert transaction.event_time == record["event_time"]


def test_live_events_decode_as_the_pipeline_decodes_them() -> None:
    def clock() -> datetime:
        return datetime(2026, 5, 1, tzinfo=UTC)

    stream = live_events(SimulatorConfig(users=100, merchants=40, seed=2), clock)
    for event in itertools.islice(stream, 3000):
        payload = {k: v for k, v in event.items() if v is not None and k not in _LABELS}
        assert isinstance(payload["event_time"], datetime)
        payload["event_time"] = int(payload["event_time"].timestamp() * 1000)
        transaction = decode_transaction(orjson.dumps(payload))
        assert transaction.tx_id == event["tx_id"]


def test_labels_are_not_contract_fields() -> None:
    assert not set(_LABELS) & set(Transaction.model_fields)
