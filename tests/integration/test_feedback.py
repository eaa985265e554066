"""The feedback service on the real broker and Redis: joins, parking, duplicates, restarts.

Each test gets fresh topics, its own state directory and its own merchants, and drives
``fraudstream feedback`` only through records on ``decisions`` and ``labels``.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from models.offline_store import applied_label_files, read_feedback_examples, read_joined_labels
from operators.merchant_labels import merchant_label_values, merchant_risk_from
from operators.scoring import OnlineScorer
from schemas import ModelUpdate
from streams.feedback import LEARNER_FEATURES
from streams.redis_store import keys
from streams.settings import Settings
from tests.doubles import decision_payload, label_payload, now_ms
from tests.integration._feedback import FeedbackProcess, FeedbackTopics, send
from tests.integration._scorer import read_all, wait_until

STARTUP_S = 90


@pytest.fixture
def service(feedback_topics: FeedbackTopics, tmp_path: Path) -> Iterator[FeedbackProcess]:
    with FeedbackProcess(feedback_topics, tmp_path / "state") as process:
        wait_until(process.ready, timeout_s=STARTUP_S, what="feedback service ready",
                   diagnose=process.log_tail)  # fmt: skip
        yield process


def _features(fraudulent: bool, rng: random.Random) -> dict[str, float | None]:
    """A pattern the learner can pick up: fraud is large, fast and at a new merchant."""
    values: dict[str, float | None] = {name: None for name in LEARNER_FEATURES}
    values["amount"] = rng.uniform(600, 900) if fraudulent else rng.uniform(5, 60)
    values["user_count_1h"] = float(rng.randint(6, 10) if fraudulent else rng.randint(0, 2))
    values["user_first_time_merchant"] = 1.0 if fraudulent else 0.0
    values["is_night"] = float(rng.random() < 0.5)
    return values


def _decisions(count: int, merchant: str, *, fraudulent: bool, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    tag = uuid.uuid4().hex[:8]
    return [
        decision_payload(
            tx_id=f"tx-{tag}-{i}",
            user_id=f"u-{tag}-{i % 40}",
            merchant_id=merchant,
            features=_features(fraudulent, rng),
        )
        for i in range(count)
    ]


def _labels(decisions: list[dict[str, Any]], verdict: str) -> list[dict[str, Any]]:
    return [label_payload(d["tx_id"], d["user_id"], verdict) for d in decisions]


def _store_rows(process: FeedbackProcess) -> int:
    if not process.store_dir.exists():
        return 0
    return sum(len(read_joined_labels(path)) for path in applied_label_files(process.store_dir))


def _merchant_share(client: redis.Redis, merchant: str) -> float:
    raw = client.get(keys.merchant_risk(merchant))
    assert isinstance(raw, bytes | None)
    return merchant_risk_from(merchant_label_values(raw, now_ms()))


def _latest_online_update(settings: Settings, topic: str) -> ModelUpdate | None:
    latest = None
    for record in read_all(settings, topic):
        if record.key == b"online" and record.value:
            latest = ModelUpdate.model_validate_json(record.value)
    return latest


def test_labels_teach_the_online_model_and_merchant_risk(
    servers: Settings,
    service: FeedbackProcess,
    feedback_topics: FeedbackTopics,
    redis_client: redis.Redis,
) -> None:
    risky, safe = f"m-risky-{uuid.uuid4().hex[:8]}", f"m-safe-{uuid.uuid4().hex[:8]}"
    fraud = _decisions(150, risky, fraudulent=True, seed=1)
    legit = _decisions(150, safe, fraudulent=False, seed=2)
    interleaved = [d for pair in zip(fraud, legit, strict=True) for d in pair]
    send(servers, feedback_topics.decisions, interleaved)
    send(servers, feedback_topics.labels, _labels(fraud, "fraud") + _labels(legit, "legit"))

    def learned_all() -> ModelUpdate | None:
        update = _latest_online_update(servers, feedback_topics.model_updates)
        return update if update is not None and update.metrics.get("labels") == 300 else None

    update = wait_until(learned_all, timeout_s=60, what="an online model trained on 300 labels",
                        diagnose=service.log_tail)  # fmt: skip
    model = OnlineScorer.load(Path(update.uri), update.sha256)
    assert model.feature_names == LEARNER_FEATURES

    def matrix(rows: list[dict[str, float | None]]) -> np.ndarray:
        return np.array(
            [[np.nan if r[n] is None else r[n] for n in model.feature_names] for r in rows],
            dtype=np.float64,
        )

    # Unseen transactions like the labelled fraud score high, unseen legit ones low.
    rng = random.Random(99)
    similar = model.score(matrix([_features(True, rng) for _ in range(50)]))
    ordinary = model.score(matrix([_features(False, rng) for _ in range(50)]))
    assert similar.min() > ordinary.max()
    assert similar.mean() > 0.7
    assert ordinary.mean() < 0.3

    # Merchant risk in Redis, as the scorer's enrichment reads it.
    wait_until(lambda: _merchant_share(redis_client, risky) == 1.0, timeout_s=20,
               what="risky merchant's fraud share in Redis")  # fmt: skip
    assert _merchant_share(redis_client, safe) == 0.0

    # Every joined label is in the offline store, once.
    wait_until(lambda: _store_rows(service) == 300, timeout_s=20, what="300 rows in the store")
    examples = read_feedback_examples(service.store_dir)
    assert len(examples) == 300
    assert set(examples.loc[examples["merchant_id"] == risky, "label"]) == {1}
    assert examples["f:amount"].notna().all()
    assert service.value("fraud_labels_total", label="fraud") == 150


def test_a_label_before_its_decision_is_parked_then_joined(
    servers: Settings, service: FeedbackProcess, feedback_topics: FeedbackTopics
) -> None:
    decisions = _decisions(5, f"m-{uuid.uuid4().hex[:8]}", fraudulent=True, seed=3)
    send(servers, feedback_topics.labels, _labels(decisions, "fraud"))
    wait_until(lambda: service.value("fraud_feedback_parked_labels") == 5, timeout_s=30,
               what="5 parked labels", diagnose=service.log_tail)  # fmt: skip
    assert _store_rows(service) == 0

    send(servers, feedback_topics.decisions, decisions)
    wait_until(lambda: _store_rows(service) == 5, timeout_s=30, what="the parked labels joined")
    wait_until(lambda: service.value("fraud_feedback_parked_labels") == 0, timeout_s=10,
               what="no label left parked")  # fmt: skip
    examples = read_feedback_examples(service.store_dir)
    assert sorted(examples["tx_id"]) == sorted(d["tx_id"] for d in decisions)


def test_duplicates_are_no_ops_and_a_changed_verdict_corrects(
    servers: Settings,
    service: FeedbackProcess,
    feedback_topics: FeedbackTopics,
    redis_client: redis.Redis,
) -> None:
    merchant = f"m-{uuid.uuid4().hex[:8]}"
    (decision,) = _decisions(1, merchant, fraudulent=False, seed=4)
    send(servers, feedback_topics.decisions, [decision])
    legit = label_payload(decision["tx_id"], decision["user_id"], "legit")
    send(servers, feedback_topics.labels, [legit, legit])
    wait_until(lambda: service.value("fraud_feedback_labels_total", outcome="duplicate") == 1,
               timeout_s=30, what="the repeated label seen", diagnose=service.log_tail)  # fmt: skip
    assert service.value("fraud_feedback_labels_total", outcome="new") == 1
    assert _store_rows(service) == 1
    wait_until(lambda: _merchant_share(redis_client, merchant) == 0.0, timeout_s=10,
               what="merchant share 0")  # fmt: skip

    changed = label_payload(decision["tx_id"], decision["user_id"], "fraud", analyst_id="lead")
    send(servers, feedback_topics.labels, [changed])
    wait_until(lambda: service.value("fraud_feedback_labels_total", outcome="corrected") == 1,
               timeout_s=30, what="the correction applied")  # fmt: skip
    assert _store_rows(service) == 2
    (row,) = read_feedback_examples(service.store_dir).to_dict(orient="records")
    assert row["label"] == 1
    assert row["analyst_id"] == "lead"
    wait_until(lambda: _merchant_share(redis_client, merchant) == 1.0, timeout_s=10,
               what="merchant share corrected to 1")  # fmt: skip


def test_a_killed_service_loses_no_label_and_applies_none_twice(
    servers: Settings, feedback_topics: FeedbackTopics, tmp_path: Path
) -> None:
    decisions = _decisions(400, f"m-{uuid.uuid4().hex[:8]}", fraudulent=False, seed=5)
    verdicts = [label_payload(d["tx_id"], d["user_id"], random.Random(i).choice(["fraud", "legit"]))
                for i, d in enumerate(decisions)]  # fmt: skip
    send(servers, feedback_topics.decisions, decisions)
    process = FeedbackProcess(feedback_topics, tmp_path / "state",
                              env={"FRAUD_FEEDBACK_BATCH_SIZE": "20"})  # fmt: skip
    with process:
        wait_until(process.ready, timeout_s=STARTUP_S, what="ready", diagnose=process.log_tail)
        send(servers, feedback_topics.labels, verdicts[:200])
        wait_until(lambda: _store_rows(process) >= 60, timeout_s=30, what="some labels applied")
        process.kill()
        send(servers, feedback_topics.labels, verdicts[200:])
        process.start()
        wait_until(process.ready, timeout_s=STARTUP_S, what="ready again",
                   diagnose=process.log_tail)  # fmt: skip
        wait_until(lambda: _store_rows(process) >= 400, timeout_s=60,
                   what="all 400 labels applied", diagnose=process.log_tail)  # fmt: skip
        wait_until(lambda: process.value("fraud_online_model_quality", metric="labels") == 400,
                   timeout_s=30, what="the learner at 400 labels")  # fmt: skip
    assert _store_rows(process) == 400  # none applied twice
    examples = read_feedback_examples(process.store_dir)
    expected = {v["tx_id"]: int(v["label"] == "fraud") for v in verdicts}
    assert dict(zip(examples["tx_id"], examples["label"].astype(int), strict=True)) == expected
