"""Fault 5: 5 % poison records among live traffic; the scorer stays up and leaks no card number.

What it proves, with exact figures: of 4,000 records, 200 are poison of every kind a
producer gets wrong (invalid JSON or UTF-8, missing, extra or wrongly typed fields, NaN,
negative or absurd amounts, event times 2 h ahead, 1 MiB payloads, card numbers in the
key, in identifier fields, in free text, as a bare number, inside unparsable bytes).
The 27 kinds and the outcome each must get are ``tests.doubles.POISON_KINDS``: 193 of
the 200 go to the DLQ, 7 (a card number only in the Kafka key) are decided. Afterwards

- the scorer never stopped (a 1 MiB record used to stop it: its dead letter was too
  large to produce), and ``decisions + DLQ == inputs`` exactly (3,807 + 193 = 4,000);
- every valid transaction (and the one poison kind the scorer accepts by design, a card
  number only in the Kafka key, which it never reads) is decided exactly once, and every
  other poison record is in the DLQ exactly once (matched by its source partition and
  offset), with the reason its kind must get, stage ``decode`` and its error class;
- no card number (the detector of ``schemas`` plus a plain search for each test PAN,
  bare, spaced and dashed) is in any decision or DLQ record (key, value, headers), in
  the scorer's log, or in any Redis key or string value.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import redis
from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from schemas import DlqRecord
from schemas._pan import data_holds_pan, raw_may_hold_pan
from streams.redis_store import keys
from streams.settings import Settings
from tests.doubles import HUGE_RECORD_BYTES, POISON_KINDS, TEST_PANS, poison_record
from tests.integration._decisions import decisions_by_tx, run_tag, wait_for_records
from tests.integration._scorer import Record, Scorer, ScoreTopics, isolated_events, read_all

pytestmark = pytest.mark.integration

TOTAL, POISON = 4_000, 200  # 5 %
#: Room for a 1 MiB record on the input topic and in the test's producer (both default to
#: about 1 MB), so that it is acknowledged and therefore owed a dead letter.
RECORD_LIMIT = 4 * HUGE_RECORD_BYTES
#: Every form of the test card numbers, searched as plain bytes besides the detector.
PAN_NEEDLES = tuple(
    {form.encode() for pan in TEST_PANS for form in (pan, pan.replace(" ", "").replace("-", ""))}
)


@pytest.fixture
def poison_topics(servers: Settings, score_topics: ScoreTopics) -> ScoreTopics:
    """The fresh score topics, the input one taking records of up to 4 MiB."""
    admin = AdminClient(servers.kafka_config())
    resource = ConfigResource(
        ResourceType.TOPIC,
        score_topics.transactions,
        incremental_configs=[
            ConfigEntry("max.message.bytes", str(RECORD_LIMIT),
                        incremental_operation=AlterConfigOpType.SET)
        ],
    )  # fmt: skip
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)
    return score_topics


def _produce_recording(
    settings: Settings, topic: str, records: list[tuple[bytes, bytes]]
) -> list[tuple[int, int]]:
    """Send every record (acks=all) and return each one's (partition, offset)."""
    producer = Producer(settings.producer_config(**{"message.max.bytes": RECORD_LIMIT}))
    where: list[tuple[int, int] | None] = [None] * len(records)
    errors: list[str] = []

    def delivered(index: int) -> Callable[[KafkaError | None, Message], None]:
        def callback(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                errors.append(str(error))
                return
            partition, offset = message.partition(), message.offset()
            assert partition is not None and offset is not None
            where[index] = (partition, offset)

        return callback

    for index, (key, value) in enumerate(records):
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=delivered(index))
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert not errors, errors[:5]
    acknowledged = [position for position in where if position is not None]
    assert len(acknowledged) == len(records)
    return acknowledged


def _pan_free(data: bytes | str | None) -> bool:
    """No test PAN as plain bytes, and nothing the detector takes for a card number."""
    if data is None:
        return True
    raw = data.encode() if isinstance(data, str) else data
    if any(needle in raw for needle in PAN_NEEDLES):
        return False
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # Byte by byte, skipping an epoch-ms number under a timestamp key, as in JSON: a
        # huge record cut at the DLQ's limit is no longer JSON but keeps its event_time.
        return not raw_may_hold_pan(raw)
    # Field by field: a 13-digit epoch-ms event_time is not a card number.
    return not data_holds_pan(parsed)


def _log_pan_free(text: str) -> list[str]:
    """The log lines holding a card number (each line is a JSON object)."""
    return [line for line in text.splitlines() if not _pan_free(line.encode())]


def _redis_pan_hits(client: redis.Redis) -> list[str]:
    """Keys whose name, or whose value when a string, holds a card number.

    Names and cached decisions get the detector too; other values (merchant label
    records, drift summaries) hold bare epoch-ms integers under keys the detector does
    not know as timestamps, so they get the plain search for each test PAN only.
    """
    hits = []
    decision_prefix = keys.decision("").encode()
    for name in client.scan_iter(count=1000):
        assert isinstance(name, bytes)
        if not _pan_free(name):
            hits.append(f"key {name!r}")
            continue
        if client.type(name) != b"string":
            continue
        value = client.get(name)
        assert isinstance(value, bytes | None)
        if name.startswith(decision_prefix):
            leaked = not _pan_free(value)
        else:
            leaked = value is not None and any(needle in value for needle in PAN_NEEDLES)
        if leaked:
            hits.append(f"value of {name!r}")
    return hits


def test_poison_records_are_dead_lettered_with_their_reason_and_no_card_number_leaks(
    servers: Settings,
    poison_topics: ScoreTopics,
    model_dir: Path,
    tmp_path: Path,
    redis_client: redis.Redis,
) -> None:
    # The search finds each test PAN in JSON, in broken bytes and in a log line.
    for pan in TEST_PANS:
        assert not _pan_free(orjson.dumps({"note": f"card {pan}"}))
        assert not _pan_free(b"\xff{" + pan.encode())
    rng = random.Random(5)
    events = isolated_events(TOTAL, seed=15, tag=run_tag())
    poison_at = sorted(rng.sample(range(TOTAL), POISON))
    kind_at = dict(zip(poison_at, (list(POISON_KINDS) * POISON)[:POISON], strict=True))
    assert set(kind_at.values()) == set(POISON_KINDS)  # every kind, at least 7 of each

    records: list[tuple[bytes, bytes]] = []
    outcome: list[tuple[str, str | None]] = []  # (kind, DLQ reason; None: a decision)
    for i, event in enumerate(events):
        if i in kind_at:
            key, value, reason = poison_record(event, kind_at[i])
            records.append((key, value))
            outcome.append((kind_at[i], reason))
        else:
            records.append((event["user_id"].encode(), orjson.dumps(event)))
            outcome.append(("valid", None))
    owed_decision = {events[i]["tx_id"] for i, (_, reason) in enumerate(outcome) if reason is None}
    log = tmp_path / "scorer.log"

    with Scorer(poison_topics, log, model_dir=model_dir) as scorer:
        positions = _produce_recording(servers, poison_topics.transactions, records)
        dead_due = {positions[i]: outcome[i] for i in range(TOTAL) if outcome[i][1] is not None}
        wait_for_records(scorer, servers, {poison_topics.decisions: len(owed_decision),
                                           poison_topics.dlq: len(dead_due)})  # fmt: skip
        scorer.assert_running()  # it never stopped, even for the 1 MiB records
        dead_metric = scorer.metric("fraud_dlq_messages_total")
    assert scorer.returncode == 130, scorer.log_tail()  # and stops cleanly on Ctrl-C
    decisions = read_all(servers, poison_topics.decisions)
    dead = read_all(servers, poison_topics.dlq)

    # decisions + DLQ == inputs, exactly; and record by record.
    assert len(decisions) + len(dead) == TOTAL
    by_tx = decisions_by_tx(decisions)
    assert set(by_tx) == owed_decision
    assert all(len(copies) == 1 for copies in by_tx.values())
    letters = [
        DlqRecord.from_kafka(r.key, r.value, [(n, v.encode()) for n, v in r.headers.items()])
        for r in dead
    ]
    found = Counter((letter.source_partition, letter.source_offset) for letter in letters)
    assert set(found) == set(dead_due) and set(found.values()) == {1}
    wrong = []
    for letter in letters:
        kind, reason = dead_due[(letter.source_partition, letter.source_offset)]
        named = (letter.error_reason, letter.stage, letter.source_topic)
        if named != (reason, "decode", poison_topics.transactions):
            wrong.append((kind, named))
        assert letter.error_class in {"SchemaValidationError", "PanDetectedError"}, letter
        assert letter.error_message
        # A huge record's bytes are kept up to the decoder's limit, so the DLQ takes it.
        assert len(letter.value) <= (64 * 1024 if reason == "too_large" else HUGE_RECORD_BYTES)
    assert not wrong, f"{len(wrong)} dead letters with the wrong reason, e.g. {wrong[:5]}"
    reasons = Counter(letter.error_reason for letter in letters)
    assert {dict(k)["reason"]: v for k, v in dead_metric.items()} == reasons

    # No card number anywhere: topics (key, value, headers), the log, Redis.
    def record_hits(topic: str, records: list[Record]) -> list[str]:
        return [
            f"{topic}[{r.partition}:{r.offset}] {part!r:.300}"
            for r in records
            for part in (r.key, r.value, *r.headers.values())
            if not _pan_free(part)
        ]

    topic_hits = record_hits("decisions", decisions) + record_hits("dlq", dead)
    log_hits = _log_pan_free(log.read_text(errors="replace"))
    redis_hits = _redis_pan_hits(redis_client)
    by_kind = Counter(kind for kind, _ in outcome if kind != "valid")
    print(
        f"\npoison: inputs={TOTAL} poison={sum(by_kind.values())} kinds={len(by_kind)} "
        f"by_kind={dict(sorted(by_kind.items()))} decisions={len(decisions)} "
        f"dlq={len(dead)} dlq_by_reason={dict(sorted(reasons.items()))} "
        f"pan_hits={len(topic_hits) + len(log_hits) + len(redis_hits)} "
        f"(topics={len(topic_hits)} log={len(log_hits)} redis={len(redis_hits)})"
    )
    assert not topic_hits, topic_hits[:5]
    assert not log_hits, log_hits[:3]
    assert not redis_hits, redis_hits[:5]
