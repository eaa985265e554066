"""The "score" dataflow's wiring, run in-process on Bytewax's testing source and sinks.

No server: Redis points at a closed port (the flow degrades at once, by design) and the
model folder is empty (rules only). What is checked is the plumbing between the steps:
what reaches the DLQ and why, what reaches ``decisions`` and in which shape, dedupe and
the per-user state.
"""

from __future__ import annotations

import socket
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.testing import TestingSink, TestingSource, run_main
from pydantic import SecretStr

from operators.engine import DECISION_FEATURES
from schemas import Decision, DlqRecord, contains_pan
from streams.dataflow import FlowIO, build_score_flow
from streams.settings import Settings
from tests.doubles import (
    MALFORMED_KINDS,
    TEST_PAN,
    kafka_error,
    kafka_message,
    malformed_record,
    now_ms,
    rfc3339,
    transaction_payload,
)

Out = KafkaSinkMessage[bytes | None, bytes | None]
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def closed_port() -> int:
    """A loopback port nobody listens on: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def settings(tmp_path: Path, closed_port: int) -> Settings:
    return Settings(
        redis_url=SecretStr(f"redis://127.0.0.1:{closed_port}/0"),
        model_dir=tmp_path / "no-model",
        state_dir=tmp_path / "state",
    )


def run_flow(settings: Settings, items: list[Any]) -> tuple[list[Out], list[Out]]:
    """Run the flow to completion over ``items``; returns (decisions, dead letters)."""
    decisions: list[Out] = []
    dead: list[Out] = []
    io = FlowIO(
        source=TestingSource(items, batch_size=4),
        decisions=TestingSink(decisions),
        dead_letters=TestingSink(dead),
    )
    run_main(build_score_flow(settings, io), epoch_interval=timedelta(seconds=1))
    return decisions, dead


def decoded(messages: list[Out]) -> list[Decision]:
    return [Decision.model_validate_json(message.value or b"") for message in messages]


def dlq_record(message: Out) -> DlqRecord:
    return DlqRecord.from_kafka(message.key, message.value or b"", message.headers)


def test_undecodable_records_go_to_the_dlq_with_their_reason(settings: Settings) -> None:
    valid = transaction_payload()
    items: list[Any] = [kafka_message(valid, offset=0)]
    expected: dict[int, str] = {}
    for offset, kind in enumerate(MALFORMED_KINDS, start=1):
        key, value, reason = malformed_record(transaction_payload(), kind)
        items.append(kafka_message(value, key=key, partition=3, offset=offset))
        expected[offset] = reason
    items.append(kafka_message(None, key=b"u-empty", partition=3, offset=10))
    expected[10] = "empty"
    items.append(kafka_error(kafka_message(b"", key=b"u-err", partition=3, offset=11)))
    expected[11] = "kafka_error"

    decisions, dead = run_flow(settings, items)

    assert [d.tx_id for d in decoded(decisions)] == [valid["tx_id"]]
    records = [dlq_record(message) for message in dead]
    assert {r.source_offset: r.error_reason for r in records} == expected
    assert all(r.stage == "decode" for r in records)
    assert all((r.source_topic, r.source_partition) == ("transactions", 3) for r in records)
    assert all(r.error_class and r.error_message and r.failed_at for r in records)
    for message in dead:
        flat = b"".join(
            [message.key or b"", message.value or b""] + [v for _, v in message.headers]
        )
        assert TEST_PAN.encode() not in flat
        assert not contains_pan(flat.decode("utf-8", "replace"))


def test_the_dlq_keeps_the_original_bytes_of_a_record(settings: Settings) -> None:
    key, value, _ = malformed_record(transaction_payload(), "float_amount")

    _, dead = run_flow(settings, [kafka_message(value, key=key)])

    assert [(m.key, m.value) for m in dead] == [(key, value)]


def test_a_repeated_tx_id_re_emits_the_first_decision_byte_for_byte(settings: Settings) -> None:
    first = transaction_payload(user_id="u-dup")
    other = transaction_payload(user_id="u-dup")
    # A producer retry sends the same bytes; a buggy upstream may even change the amount.
    altered = {**first, "amount": "9999.00"}
    items = [kafka_message(first), kafka_message(other), kafka_message(first)]
    items.append(kafka_message(altered))

    decisions, dead = run_flow(settings, items)

    assert dead == []
    tx_ids = [d.tx_id for d in decoded(decisions)]
    assert tx_ids == [first["tx_id"], other["tx_id"], first["tx_id"], first["tx_id"]]
    assert decisions[2].value == decisions[0].value
    assert decisions[3].value == decisions[0].value
    # The repeats were not counted into the user's windows either.
    assert decoded(decisions)[1].features["user_count_1h"] == 2.0


def test_decisions_are_valid_decision_messages_keyed_by_user(settings: Settings) -> None:
    payloads = [transaction_payload(user_id=f"u-shape-{i % 2}") for i in range(6)]

    decisions, _ = run_flow(settings, [kafka_message(p) for p in payloads])

    # Keyed steps group a batch by key: order holds per user, not across users.
    payload_of = {p["tx_id"]: p for p in payloads}
    assert sorted(d.tx_id for d in decoded(decisions)) == sorted(payload_of)
    for message, decision in zip(decisions, decoded(decisions), strict=True):
        payload = payload_of[decision.tx_id]
        assert message.key == payload["user_id"].encode()
        assert decision.user_id == payload["user_id"]
        assert (decision.merchant_id, decision.amount) == (
            payload["merchant_id"],
            Decimal(payload["amount"]),
        )
        assert list(decision.features) == list(DECISION_FEATURES)
        assert decision.features["amount"] == 25.0
        # Without Redis: the merchant label features of a merchant with no known labels.
        assert decision.features["merchant_known_labels_28d"] == 0.0
        assert decision.features["merchant_known_fraud_share_28d"] is None
        # No model and no Redis here: decided anyway, by the rules, and flagged for both.
        assert decision.degraded
        assert decision.degraded_cause is not None
        assert "no_model" in decision.degraded_cause
        assert "redis" in decision.degraded_cause
        assert decision.score is None
        assert decision.decision in {"APPROVE", "REVIEW", "BLOCK"}
        assert rfc3339(int(decision.event_time.timestamp() * 1000)) == payload["event_time"]


def test_features_of_a_users_events_count_up(settings: Settings) -> None:
    start = now_ms() - 10 * 60_000
    items = []
    for i in range(4):
        for user in ("u-count-a", "u-count-b"):
            payload = transaction_payload(
                user_id=user, merchant_id="m-count", amount=f"{10 * (i + 1)}.00"
            )
            payload["event_time"] = rfc3339(start + i * 60_000)
            items.append(kafka_message(payload))

    decisions, _ = run_flow(settings, items)

    by_user: dict[str, list[Decision]] = {}
    for decision in decoded(decisions):
        by_user.setdefault(decision.user_id, []).append(decision)
    for user in ("u-count-a", "u-count-b"):
        events = by_user[user]
        assert [d.features["user_count_1h"] for d in events] == [1.0, 2.0, 3.0, 4.0]
        assert [d.features["user_amount_sum_1h"] for d in events] == [10.0, 30.0, 60.0, 100.0]
        assert events[0].features["user_seconds_since_prev"] is None
        assert [d.features["user_seconds_since_prev"] for d in events[1:]] == [60.0] * 3
    # The merchant sees both users' events.
    merchant_counts = sorted(d.features["merchant_count_1h"] or 0.0 for d in decoded(decisions))
    assert merchant_counts[-1] == 8.0
    assert max(d.features["merchant_distinct_users_1h"] or 0.0 for d in decoded(decisions)) == 2.0


def test_events_more_than_an_hour_in_the_future_go_to_the_dlq(settings: Settings) -> None:
    future = transaction_payload(event_time=rfc3339(now_ms() + 2 * HOUR_MS))
    soon = transaction_payload(event_time=rfc3339(now_ms() + HOUR_MS // 2))

    decisions, dead = run_flow(settings, [kafka_message(future), kafka_message(soon)])

    assert [d.tx_id for d in decoded(decisions)] == [soon["tx_id"]]
    assert len(dead) == 1
    record = dlq_record(dead[0])
    assert record.error_reason == "future_event_time"
    assert orjson.loads(record.value)["tx_id"] == future["tx_id"]


def luhn_valid_epoch_ms() -> int:
    """A current epoch-ms timestamp whose 13 digits happen to pass the Luhn check."""
    base = now_ms() // 10 * 10
    return next(ms for ms in range(base, base + 10) if contains_pan(str(ms)))


def test_an_epoch_ms_event_time_is_not_taken_for_a_card_number(settings: Settings) -> None:
    payload = transaction_payload(event_time=luhn_valid_epoch_ms())
    key, value, _ = malformed_record(payload, "float_amount")

    _, dead = run_flow(settings, [kafka_message(value, key=key)])

    record = dlq_record(dead[0])
    assert (record.error_reason, record.value) == ("schema", value)


def test_the_kafka_sinks_never_give_up_on_a_decision_or_dead_letter() -> None:
    # Bytewax's KafkaSink has no delivery callback: a message librdkafka expired after
    # message.timeout.ms would be lost silently. The sinks must wait for the broker.
    from streams.dataflow import kafka_io

    io = kafka_io(Settings())
    for sink in (io.decisions, io.dead_letters):
        config = sink._add_config  # type: ignore[attr-defined]
        assert config["message.timeout.ms"] == "0"
        assert (config["acks"], config["enable.idempotence"]) == ("all", "True")
