"""Test doubles shared by the whole test suite: the one place for fakes and stand-ins.

Kafka and Redis are never faked where a user would run the real thing (integration tests
use the real servers); these doubles stand in for *inputs*: a Kafka record as the
``KafkaSource`` would hand it to the dataflow, a valid transaction payload, and the
malformed records producers get wrong in practice, each with the DLQ reason it must get.
"""

from __future__ import annotations

import hashlib
import itertools
import random
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
    "POISON_KINDS",
    "TEST_PAN",
    "TEST_PANS",
    "FakeClock",
    "FakeConsumer",
    "FakeMessage",
    "RecordingDriftSink",
    "decision_payload",
    "kafka_error",
    "kafka_message",
    "kafka_partition",
    "label_payload",
    "live_transactions",
    "malformed_record",
    "now_ms",
    "poison_record",
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


# -- poison records: every way a producer gets a record wrong, for the fault suite ------

#: Real-format test card numbers (Visa, Mastercard, Amex), as producers write them: bare,
#: grouped by spaces, grouped by dashes. None may reach a topic, a log or Redis.
TEST_PANS = (
    TEST_PAN,
    "5555555555554444",
    "378282246310005",
    "4111 1111 1111 1111",
    "5555-5555-5555-4444",
    "3782-822463-10005",
)
#: What a huge record is padded to: 1 MiB, above the decoder's 64 KiB limit.
HUGE_RECORD_BYTES = 1024 * 1024

_Maker = Callable[[dict[str, Any]], tuple[bytes, bytes]]


def _keyed(payload: dict[str, Any], **changes: Any) -> tuple[bytes, bytes]:
    return payload["user_id"].encode(), orjson.dumps({**payload, **changes})


def _invalid_utf8(payload: dict[str, Any]) -> tuple[bytes, bytes]:
    # Latin-1 bytes where UTF-8 is due: a merchant name from a legacy system.
    raw = orjson.dumps({**payload, "merchant_id": "m-cafe"})
    return payload["user_id"].encode(), raw.replace(b'"m-cafe"', b'"m-caf\xe9"')


def _nan_literal(payload: dict[str, Any]) -> tuple[bytes, bytes]:
    # What Python's json.dumps writes for float("nan"): not JSON.
    raw = orjson.dumps({**payload, "lat": 0.5})
    return payload["user_id"].encode(), raw.replace(b'"lat":0.5', b'"lat":NaN')


def _huge(payload: dict[str, Any], pan: str | None = None) -> tuple[bytes, bytes]:
    # A 1 MiB record: an unknown field padded with incompressible text (a PAN at its end).
    body = orjson.dumps({**payload, "blob": ""})
    tail = b"" if pan is None else f" {pan}".encode()
    room = HUGE_RECORD_BYTES - len(body) - len(tail)
    seed = payload["tx_id"].encode()
    blocks = (room + 63) // 64
    digests = (hashlib.sha256(seed + i.to_bytes(8, "big")).hexdigest() for i in range(blocks))
    padding = "".join(digests).encode()[:room] + tail
    value = body.replace(b'"blob":""', b'"blob":"' + padding + b'"')
    assert len(value) == HUGE_RECORD_BYTES
    return payload["user_id"].encode(), value


def _pan_only_in_key(payload: dict[str, Any]) -> tuple[bytes, bytes]:
    # A producer keying by card number: the value is valid, and the key is never read.
    return b"5555 5555 5555 4444", orjson.dumps(payload)


#: Poison by kind: ``(maker, outcome)``, the outcome being the DLQ ``error_reason`` the
#: record must get, or None when it must be decided (what the scorer accepts by design).
#: A superset of :data:`MALFORMED_KINDS`, which other tests cycle through as it is.
POISON_KINDS: dict[str, tuple[_Maker, str | None]] = {
    **MALFORMED_KINDS,
    "invalid_utf8": (_invalid_utf8, "invalid_utf8"),
    "not_an_object": (lambda p: (p["user_id"].encode(), b"[1, 2, 3]"), "not_an_object"),
    "empty_value": (lambda p: (p["user_id"].encode(), b""), "invalid_json"),
    # Extra fields are refused (extra="forbid"): a new field needs a new schema_version.
    "extra_field": (lambda p: _keyed(p, loyalty_tier="gold"), "schema"),
    "unknown_schema_version": (lambda p: _keyed(p, schema_version=99), "schema"),
    "wrong_type_user_id": (lambda p: _keyed(p, user_id=12345), "schema"),
    "wrong_type_lat": (lambda p: _keyed(p, lat="north"), "schema"),
    "wrong_type_event_time": (lambda p: _keyed(p, event_time="yesterday"), "schema"),
    "nan_literal": (_nan_literal, "invalid_json"),
    "nan_amount": (lambda p: _keyed(p, amount="NaN"), "schema"),
    "negative_amount": (lambda p: _keyed(p, amount="-25.00"), "schema"),
    "absurd_amount": (lambda p: _keyed(p, amount="999999999999.99"), "schema"),
    "future_event_time": (
        lambda p: _keyed(p, event_time=now_ms() + 2 * 3_600_000),
        "future_event_time",
    ),
    "huge_payload": (_huge, "too_large"),
    "huge_payload_with_pan": (lambda p: _huge(p, "4111-1111-1111-1111"), "too_large"),
    "pan_in_merchant_id": (lambda p: _keyed(p, merchant_id="5555555555554444"), "pan_detected"),
    "pan_in_device_id": (lambda p: _keyed(p, device_id="3782-822463-10005"), "pan_detected"),
    "pan_in_card_id": (lambda p: _keyed(p, card_id="4111 1111 1111 1111"), "pan_detected"),
    "pan_in_extra_text": (
        lambda p: _keyed(p, note="card 5555 5555 5555 4444 declined"),
        "pan_detected",
    ),
    "pan_as_number": (lambda p: _keyed(p, ref=378282246310005), "pan_detected"),
    "pan_in_invalid_json": (
        lambda p: (TEST_PAN.encode(), orjson.dumps({**p, "user_id": TEST_PAN})[:-5]),
        "invalid_json",
    ),
    "pan_in_invalid_utf8": (
        lambda p: (p["user_id"].encode(), b'{"user_id":"5555555555554444","m":"\xe9"}'),
        "invalid_utf8",
    ),
    "pan_only_in_key": (_pan_only_in_key, None),
}


def poison_record(payload: dict[str, Any], kind: str) -> tuple[bytes, bytes, str | None]:
    """``(key, value, DLQ reason or None)`` of a valid payload poisoned as ``kind`` says."""
    make, reason = POISON_KINDS[kind]
    key, value = make(payload)
    return key, value, reason


_MCCS = ("5411", "5812", "5999", "4111", "5732", "7995")
_CHANNELS = ("pos", "ecom", "atm")
_COUNTRIES = ("DE", "FR", "NL", "ES", "IT", "PL")


def live_transactions(
    count: int,
    *,
    tag: str,
    seed: int,
    users: int = 2_000,
    merchants: int = 50,
    span_ms: int = 3_600_000,
    merchant_group: Callable[[str], int] | None = None,
) -> list[dict[str, Any]]:
    """``count`` valid transactions of the last ``span_ms``, in event-time order, cheaply.

    Drawn straight from a seeded RNG (hundreds of thousands a second), unlike the
    integration tests' ``isolated_events``, which re-simulates a population's history.
    Every id is prefixed with ``tag``, so state other tests left in the shared Redis never
    applies. Each user favours a few of the ``merchants`` of their group
    (``merchant_group(user_id)``, one group by default), so merchant windows see several
    users and first visits happen; most events are located near the user's home, a few
    abroad. Event times are epoch milliseconds, evenly spaced, the last one now.
    """
    rng = random.Random(seed)
    end_ms = now_ms()
    step_ms = span_ms / max(count - 1, 1)
    profiles: dict[int, tuple[str, list[str], str, float, float]] = {}

    def profile(k: int) -> tuple[str, list[str], str, float, float]:
        if k not in profiles:
            user = f"{tag}-u{k}"
            group = merchant_group(user) if merchant_group else 0
            pool = [f"{tag}-g{group}-m{j}" for j in range(merchants)]
            favourites = rng.sample(pool, min(3, len(pool)))
            home = rng.choice(_COUNTRIES)
            profiles[k] = (user, [*favourites, rng.choice(pool)], home,
                           rng.uniform(40.0, 55.0), rng.uniform(-5.0, 20.0))  # fmt: skip
        return profiles[k]

    events: list[dict[str, Any]] = []
    for i in range(count):
        # A fifth of the traffic comes from the busiest 2 % of users.
        k = rng.randrange(max(1, users // 50)) if rng.random() < 0.2 else rng.randrange(users)
        user, places, home, lat, lon = profile(k)
        if rng.random() < 0.1:  # somewhere new this time
            places[-1] = f"{tag}-g{merchant_group(user) if merchant_group else 0}-m" + str(
                rng.randrange(merchants)
            )
        abroad = rng.random() < 0.05
        event: dict[str, Any] = {
            "schema_version": 1,
            "tx_id": f"{tag}-tx{i}",
            "user_id": user,
            "card_id": f"{user}-card",
            "merchant_id": rng.choice(places),
            "mcc": rng.choice(_MCCS),
            "amount": f"{min(rng.lognormvariate(3.0, 1.2), 99_999.0) + 0.01:.2f}",
            "currency": "EUR",
            "country": rng.choice(_COUNTRIES) if abroad else home,
            "channel": rng.choice(_CHANNELS),
            "device_id": f"{user}-dev",
            "event_time": round(end_ms - span_ms + i * step_ms),
        }
        if rng.random() < 0.85:
            shift = 8.0 if abroad else 0.05
            event["lat"] = round(lat + rng.uniform(-shift, shift), 5)
            event["lon"] = round(lon + rng.uniform(-shift, shift), 5)
        events.append(event)
    return events


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
