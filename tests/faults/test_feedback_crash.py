"""Fault 8: the feedback service killed mid-stream loses no label and applies none twice.

What it proves, with exact figures: 3,000 decided transactions get a verdict each, sent as
live traffic (150 of the labels sent twice, as a producer retry would, and 300 sent
before their decision, so they wait parked). ``fraudstream feedback`` is killed with
``kill -9`` twice while labels are arriving and restarted each time. Once it caught up:

- the offline store holds exactly 3,000 rows, one per tx_id (0 duplicates), each with
  the verdict that was sent;
- the online learner learned exactly 3,000 labels (its metric, and the ``labels`` of
  the last online model it published, which is what its checkpoint holds);
- every merchant's label record in Redis counts exactly the labels and frauds the
  oracle computes from the verdicts sent.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from models.offline_store import applied_label_files, read_joined_labels
from schemas import ModelUpdate
from streams.producing import RecordProducer
from streams.redis_store import keys
from streams.settings import Settings
from tests.doubles import decision_payload, label_payload
from tests.integration._feedback import FeedbackProcess, FeedbackTopics, send
from tests.integration._scorer import read_all, wait_until
from tests.integration._traffic import Traffic

pytestmark = pytest.mark.integration

DECIDED, PARKED, RESENT = 3_000, 300, 150
MERCHANTS, KILLS = 30, 2
#: Records per second: the stream lasts ~115 s, as a restart takes up to a minute (the
#: killed member's Kafka session has to expire before the partitions are assigned again).
RATE = 30
APPLIED_BEFORE_KILL = 300
STARTUP_S, CATCH_UP_S = 120, 180


class _Stream(Traffic):
    """Live traffic to two topics at ``RATE``: ``(topic, record)`` items, in order."""

    def __init__(self, settings: Settings, items: list[tuple[str, dict[str, Any]]]) -> None:
        super().__init__("feedback-traffic")
        self._producers = {
            topic: RecordProducer(settings, topic) for topic in {topic for topic, _ in items}
        }
        self._items = items
        self.sent = 0

    def send_all(self) -> None:
        for topic, record in self.paced(self._items, RATE):
            self._producers[topic].send(str(record["user_id"]).encode(), orjson.dumps(record))
            self.sent += 1
        for producer in self._producers.values():
            assert producer.flush(60) == 0

    @property
    def done(self) -> bool:
        return self.sent == len(self._items)

    def check(self) -> None:
        for producer in self._producers.values():
            assert producer.stats.failed == 0, producer.stats.errors


def _store_rows(process: FeedbackProcess) -> list[tuple[str, int]]:
    """Every row of the offline store as written (no dedupe): (tx_id, label)."""
    if not process.store_dir.exists():
        return []
    return [
        (row.tx_id, row.label)
        for path in applied_label_files(process.store_dir)
        for row in read_joined_labels(path)
    ]


def _applied_at_least(process: FeedbackProcess, count: int) -> Callable[[], bool]:
    return lambda: len(_store_rows(process)) >= count


def _merchant_counts(client: redis.Redis, merchants: list[str]) -> dict[str, tuple[int, int]]:
    """(labels, frauds) of the 28-day window of each merchant's record in Redis."""
    counts = {}
    for merchant, raw in zip(merchants, client.mget([keys.merchant_risk(m) for m in merchants]),
                             strict=True):  # fmt: skip
        if isinstance(raw, bytes):
            record = orjson.loads(raw)
            counts[merchant] = (record["n"][-1], record["f"][-1])
    return counts


def _latest_online_labels(settings: Settings, topic: str) -> float | None:
    latest = None
    for record in read_all(settings, topic):
        if record.key == b"online" and record.value:
            latest = ModelUpdate.model_validate_json(record.value).metrics.get("labels")
    return latest


def test_a_feedback_service_killed_twice_mid_stream_applies_every_label_once(
    servers: Settings,
    feedback_topics: FeedbackTopics,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    rng = random.Random(8)
    tag = uuid.uuid4().hex[:8]
    merchants = [f"m-{tag}-{i}" for i in range(MERCHANTS)]
    decisions = [
        decision_payload(tx_id=f"tx-{tag}-{i}", user_id=f"u-{tag}-{i % 200}",
                         merchant_id=rng.choice(merchants))
        for i in range(DECIDED)
    ]  # fmt: skip
    verdicts = [
        label_payload(d["tx_id"], d["user_id"], "fraud" if rng.random() < 0.3 else "legit")
        for d in decisions
    ]
    # The oracle: what the store, the learner and Redis must hold at the end.
    expected = {v["tx_id"]: int(v["label"] == "fraud") for v in verdicts}
    merchant_of = {d["tx_id"]: d["merchant_id"] for d in decisions}
    oracle: dict[str, tuple[int, int]] = {}
    for tx_id, fraud in expected.items():
        labels, frauds = oracle.get(merchant_of[tx_id], (0, 0))
        oracle[merchant_of[tx_id]] = (labels + 1, frauds + fraud)

    # Traffic: most decisions are there before the stream; the last PARKED arrive within
    # it, each after its label. RESENT labels come a second time, a little later.
    early, late = decisions[:-PARKED], decisions[-PARKED:]
    order = list(range(DECIDED))
    rng.shuffle(order)
    items: list[tuple[str, dict[str, Any]]] = [(feedback_topics.labels, verdicts[i]) for i in order]
    for position, decision in enumerate(late):
        label_at = next(k for k, (_, r) in enumerate(items) if r["tx_id"] == decision["tx_id"])
        items.insert(
            min(len(items), label_at + 1 + position % 200), (feedback_topics.decisions, decision)
        )
    for i in rng.sample(range(DECIDED), RESENT):
        label_at = next(k for k, (_, r) in enumerate(items) if r is verdicts[i])
        items.insert(
            min(len(items), label_at + rng.randint(1, 300)), (feedback_topics.labels, verdicts[i])
        )
    labels_sent = sum(topic == feedback_topics.labels for topic, _ in items)
    assert labels_sent == DECIDED + RESENT
    send(servers, feedback_topics.decisions, early)

    process = FeedbackProcess(
        feedback_topics, tmp_path / "state", env={"FRAUD_FEEDBACK_BATCH_SIZE": "50"}
    )
    kills, rows_at_kills = 0, []
    with process:
        wait_until(process.ready, timeout_s=STARTUP_S, what="feedback ready",
                   diagnose=process.log_tail)  # fmt: skip
        with _Stream(servers, items) as stream:
            for kill in range(1, KILLS + 1):
                # Kill once labels are being applied again (after the last restart), while
                # labels keep coming: mid-stream, most likely mid-batch.
                applied = len(_store_rows(process)) + APPLIED_BEFORE_KILL
                wait_until(_applied_at_least(process, applied), timeout_s=CATCH_UP_S,
                           what=f"{applied} labels applied", diagnose=process.log_tail)  # fmt: skip
                assert not stream.done, f"the stream ended before kill {kill}"
                process.kill()
                kills += 1
                rows_at_kills.append(len(_store_rows(process)))
                process.start()
                wait_until(process.ready, timeout_s=STARTUP_S, what=f"ready after kill {kill}",
                           diagnose=process.log_tail)  # fmt: skip
        wait_until(lambda: len(_store_rows(process)) >= DECIDED, timeout_s=CATCH_UP_S,
                   what=f"{DECIDED} rows in the store", diagnose=process.log_tail)  # fmt: skip
        wait_until(lambda: process.value("fraud_online_model_quality", metric="labels") >= DECIDED,
                   timeout_s=CATCH_UP_S, what="the learner caught up")  # fmt: skip
        wait_until(lambda: _merchant_counts(redis_client, merchants) == oracle, timeout_s=60,
                   what="merchant label records in Redis")  # fmt: skip
        wait_until(lambda: _latest_online_labels(servers, feedback_topics.model_updates) == DECIDED,
                   timeout_s=60, what="an online model published at every label")  # fmt: skip
        learned = process.value("fraud_online_model_quality", metric="labels")
        parked_left = process.value("fraud_feedback_parked_labels")
    rows = _store_rows(process)
    duplicates = sum(n - 1 for n in Counter(tx for tx, _ in rows).values())
    print(
        f"\nfeedback crash: labels_sent={labels_sent} (distinct={DECIDED} resent={RESENT} "
        f"parked_first={PARKED}) kills={kills} rows_at_kills={rows_at_kills} "
        f"offline_rows={len(rows)} "
        f"duplicates={duplicates} learned={learned:.0f} merchants={len(oracle)} "
        f"redis_counts_match={_merchant_counts(redis_client, merchants) == oracle}"
    )
    assert kills == KILLS
    assert len(rows) == DECIDED and duplicates == 0
    assert dict(rows) == expected  # every verdict, as sent
    assert learned == DECIDED
    assert parked_left == 0
    assert _merchant_counts(redis_client, merchants) == oracle
