from __future__ import annotations

import math
from datetime import UTC, datetime

import orjson

from schemas import Decision, Label, decode
from streams.feedback import Snapshot, join
from tests.doubles import decision_payload, label_payload


def _decision(**overrides: object) -> Decision:
    return decode(orjson.dumps(decision_payload(**overrides)), Decision)


def test_snapshot_round_trips_through_table_bytes() -> None:
    decision = _decision(features={"amount": 12.5, "merchant_risk": None}, score=0.3)
    snapshot = Snapshot.of(decision)
    again = Snapshot.from_bytes(snapshot.to_bytes())
    assert again == snapshot
    assert again.features == {"amount": 12.5, "merchant_risk": None}
    assert again.amount == "25.00"


def test_join_carries_what_was_scored_and_the_verdict() -> None:
    decision = _decision(event_time=1_700_000_000_000, features={"amount": math.nan})
    payload = label_payload(decision.tx_id, decision.user_id, "fraud", labeled_at=1_700_000_600_000)
    label = decode(orjson.dumps(payload), Label)
    row = join(label, Snapshot.of(decision))
    assert row.tx_id == decision.tx_id
    assert row.label == 1
    assert row.event_time == datetime.fromtimestamp(1_700_000_000, tz=UTC)
    assert row.labeled_at == datetime.fromtimestamp(1_700_000_600, tz=UTC)
    assert row.model_version == "double-model"
    assert row.features == {"amount": None}  # NaN is stored as missing
    assert row.analyst_id == "analyst-double"
