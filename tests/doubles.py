"""Test doubles shared by the whole test suite: the one place for fakes and stand-ins.

Kafka and Redis are never faked where a user would run the real thing (integration tests
use the real servers); these doubles stand in for *inputs*: a Kafka record as the
``KafkaSource`` would hand it to the dataflow, a valid transaction payload, and the
malformed records producers get wrong in practice, each with the DLQ reason it must get.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson
from bytewax.connectors.kafka import KafkaError, KafkaSourceMessage
from confluent_kafka import KafkaError as ConfluentKafkaError

__all__ = [
    "MALFORMED_KINDS",
    "TEST_PAN",
    "FakeClock",
    "FakeConsumer",
    "FakeMessage",
    "RecordingDriftSink",
    "decision_payload",
    "kafka_error",
    "kafka_message",
    "label_payload",
    "malformed_record",
    "now_ms",
    "rfc3339",
    "transaction_payload",
]

#: A Luhn-valid card number (the well-known Visa test PAN): what must never reach the DLQ.
TEST_PAN = "4111111111111111"
_CREATE_TIME = 1  # librdkafka TIMESTAMP_CREATE_TIME
_serial = itertools.count()


class FakeClock:
    """A monotonic clock that only moves when a test says so: ``clock.now += 5``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


class RecordingDriftSink:
    """Keeps the drift summaries a scorer process writes (Redis in production)."""

    def __init__(self) -> None:
        self.written: list[tuple[str, bytes, int]] = []

    def write_drift_status(self, reporter: str, status: bytes, ttl_s: int) -> None:
        """Record one write."""
        self.written.append((reporter, status, ttl_s))


def now_ms() -> int:
    """The wall clock in epoch milliseconds, the unit of ``event_time`` on the wire."""
    return time.time_ns() // 1_000_000


def rfc3339(epoch_ms: int) -> str:
    """An ``event_time`` as RFC 3339 text, the other wire form besides epoch milliseconds.

    The doubles send text so that unit tests cover it; the integration tests send epoch
    milliseconds, as ``fraudstream produce`` does.
    """
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def transaction_payload(**overrides: Any) -> dict[str, Any]:
    """A valid Transaction as a producer sends it (JSON-ready), event time now."""
    serial = next(_serial)
    payload: dict[str, Any] = {
        "schema_version": 1,
        "tx_id": f"tx-double-{serial}",
        "user_id": "u-double-1",
        "card_id": "card-double-1",
        "merchant_id": "m-double-1",
        "mcc": "5411",
        "amount": "25.00",
        "currency": "EUR",
        "country": "DE",
        "lat": 52.52,
        "lon": 13.40,
        "channel": "pos",
        "device_id": "dev-double-1",
        "event_time": rfc3339(now_ms()),
    }
    payload.update(overrides)
    return payload


def kafka_message(
    value: dict[str, Any] | bytes | None,
    *,
    key: bytes | None = None,
    topic: str = "transactions",
    partition: int = 0,
    offset: int = 0,
    timestamp_ms: int | None = None,
) -> KafkaSourceMessage[bytes | None, bytes | None]:
    """A record as ``KafkaSource`` emits it; a dict value is JSON-encoded, keyed by user_id."""
    if isinstance(value, dict):
        if key is None and isinstance(value.get("user_id"), str):
            key = value["user_id"].encode()
        value = orjson.dumps(value)
    return KafkaSourceMessage(
        key=key,
        value=value,
        topic=topic,
        offset=offset,
        partition=partition,
        timestamp=(_CREATE_TIME, now_ms() if timestamp_ms is None else timestamp_ms),
    )


def kafka_error(
    message: KafkaSourceMessage[bytes | None, bytes | None],
    code: int = ConfluentKafkaError._MSG_TIMED_OUT,
) -> KafkaError[bytes | None, bytes | None]:
    """What ``KafkaSource(raise_on_errors=False)`` emits for a consumer error."""
    return KafkaError(ConfluentKafkaError(code), message)


def _invalid_json(payload: dict[str, Any]) -> tuple[bytes, bytes]:
    return payload["user_id"].encode(), orjson.dumps(payload)[:-7]  # cut mid-record


def _missing_field(payload: dict[str, Any]) -> tuple[bytes, bytes]:
    broken = {k: v for k, v in payload.items() if k != "merchant_id"}
    return payload["user_id"].encode(), orjson.dumps(broken)


def _float_amount(payload: dict[str, Any]) -> tuple[bytes, bytes]:
    return payload["user_id"].encode(), orjson.dumps({**payload, "amount": 12.5})


def _pan_in_user_id(payload: dict[str, Any]) -> tuple[bytes, bytes]:
    # A producer that keys by user_id leaks the card number into the key too.
    return TEST_PAN.encode(), orjson.dumps({**payload, "user_id": TEST_PAN})


#: Malformed-record makers by kind, with the ``error_reason`` the DLQ must give each.
MALFORMED_KINDS: dict[str, tuple[Callable[[dict[str, Any]], tuple[bytes, bytes]], str]] = {
    "invalid_json": (_invalid_json, "invalid_json"),
    "missing_field": (_missing_field, "schema"),
    "float_amount": (_float_amount, "schema"),
    "pan_in_user_id": (_pan_in_user_id, "pan_detected"),
}


def malformed_record(payload: dict[str, Any], kind: str) -> tuple[bytes, bytes, str]:
    """``(key, value, expected DLQ reason)`` of a valid payload broken in the way ``kind`` says."""
    make, reason = MALFORMED_KINDS[kind]
    key, value = make(payload)
    return key, value, reason


def decision_payload(**overrides: Any) -> dict[str, Any]:
    """A valid Decision as the scorer emits it (JSON-ready): APPROVE, a few features."""
    serial = next(_serial)
    moment = now_ms()
    payload: dict[str, Any] = {
        "schema_version": 1,
        "tx_id": f"tx-double-{serial}",
        "user_id": "u-double-1",
        "merchant_id": "m-double-1",
        "amount": "25.00",
        "decision": "APPROVE",
        "score": 0.01,
        "member_scores": {},
        "model_version": "double-model",
        "rules_fired": [],
        "reasons": [],
        "features": {"amount": 25.0, "user_tx_count_1h": 1.0},
        "degraded": False,
        "degraded_cause": None,
        "event_time": moment,
        "decided_at": moment,
        "latency_ms": 1.0,
    }
    payload.update(overrides)
    return payload


def label_payload(
    tx_id: str, user_id: str, label: str = "fraud", **overrides: Any
) -> dict[str, Any]:
    """A valid Label for a decided transaction (JSON-ready), labelled now."""
    payload: dict[str, Any] = {
        "schema_version": 1,
        "tx_id": tx_id,
        "user_id": user_id,
        "label": label,
        "source": "analyst",
        "labeled_at": rfc3339(now_ms()),
        "analyst_id": "analyst-double",
    }
    payload.update(overrides)
    return payload


class FakeMessage:
    """A confluent-kafka ``Message`` as a consumer returns it: topic, value, CreateTime."""

    def __init__(self, topic: str, value: bytes, timestamp_ms: int) -> None:
        self._topic, self._value, self._timestamp_ms = topic, value, timestamp_ms

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def value(self) -> bytes:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return 1, self._timestamp_ms


class FakeConsumer:
    """A confluent-kafka ``Consumer`` for the bench's collector: two empty partitions per
    topic; hands out what the test queued, then nothing."""

    def __init__(self, _config: dict[str, object]) -> None:
        self.queued: list[FakeMessage] = []

    def list_topics(self, topic: str, timeout: float) -> SimpleNamespace:
        partitions = {0: None, 1: None}
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions=partitions)})

    def get_watermark_offsets(self, _partition: object, timeout: float) -> tuple[int, int]:
        return 0, 0

    def assign(self, _partitions: object) -> None:
        return None

    def poll(self, _timeout: float) -> FakeMessage | None:
        return self.queued.pop(0) if self.queued else None

    def consume(self, _count: int, _timeout: float) -> list[FakeMessage]:
        taken, self.queued = self.queued, []
        return taken

    def close(self) -> None:
        return None
