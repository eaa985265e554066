from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from models.offline_store import JoinedLabel, OfflineStoreWriter
from streams.exceptions import FeedbackError
from streams.feedback import LEARNER_FEATURES, FeedbackCore

START = datetime(2026, 11, 1, tzinfo=UTC)


def _row(i: int, label: int, *, merchant: str = "m-1", minutes: int = 0) -> JoinedLabel:
    rng = random.Random(i)
    fraud_like = label == 1
    return JoinedLabel(
        tx_id=f"tx-{i}",
        user_id=f"u-{i % 7}",
        merchant_id=merchant,
        amount="10.00",
        event_time=START + timedelta(minutes=i),
        label=label,
        source="analyst",
        labeled_at=START + timedelta(minutes=i + 5 + minutes),
        analyst_id=None,
        decision="REVIEW",
        score=0.5,
        model_version="v1",
        features={
            "amount": rng.uniform(500, 900) if fraud_like else rng.uniform(5, 50),
            "user_count_1h": float(rng.randint(5, 9) if fraud_like else rng.randint(0, 2)),
        },
    )


def _rows(count: int) -> list[JoinedLabel]:
    return [_row(i, i % 3 == 0) for i in range(count)]


def test_the_learner_sees_the_scored_features_and_merchant_windows() -> None:
    assert LEARNER_FEATURES[: len(LEARNER_FEATURES) - 12][-1] == "merchant_risk"
    assert "merchant_known_fraud_share_28d" in LEARNER_FEATURES


def test_new_duplicate_and_corrected_verdicts() -> None:
    core = FeedbackCore()
    row = _row(1, 0)
    assert core.apply(row) == "new"
    assert core.apply(row) == "duplicate"
    assert core.learner.n_learned == 1
    before = core.learner.predict_one(row.features)
    corrected = _row(1, 1, minutes=10)
    assert core.classify(corrected) == "corrected"
    assert core.apply(corrected) == "corrected"
    assert core.verdicts["tx-1"] == 1
    assert core.learner.n_learned == 1  # a correction is not a new example
    assert core.learner.predict_one(row.features) > before
    assert core.dirty_merchants == {"m-1"}
    assert core.labels_since_publish == 2


def test_labels_move_predictions_for_similar_transactions() -> None:
    core = FeedbackCore()
    probe_fraud = {"amount": 700.0, "user_count_1h": 7.0}
    probe_legit = {"amount": 20.0, "user_count_1h": 1.0}
    for row in _rows(300):
        core.apply(row)
    assert core.learner.predict_one(probe_fraud) > 0.8
    assert core.learner.predict_one(probe_legit) < 0.2


def test_restore_from_store_alone_equals_the_live_state(tmp_path: Path) -> None:
    store = tmp_path / "store"
    writer = OfflineStoreWriter(store)
    live = FeedbackCore()
    rows = [*_rows(120), _row(4, 1, minutes=60)]  # one correction among them
    for start in range(0, len(rows), 25):
        batch = rows[start : start + 25]
        fresh = [row for row in batch if live.apply(row) != "duplicate"]
        live.mark_applied(writer.append(fresh))
    restored, replayed = FeedbackCore.restore(store, tmp_path / "no-checkpoint.json")
    assert replayed == len(rows)
    assert restored.verdicts == live.verdicts
    assert restored.learner.state() == live.learner.state()
    assert restored.book.state() == live.book.state()


def test_restore_replays_only_files_after_the_checkpoint(tmp_path: Path) -> None:
    store, checkpoint = tmp_path / "store", tmp_path / "checkpoint.json"
    writer = OfflineStoreWriter(store)
    live = FeedbackCore()
    rows = _rows(90)
    for row in rows[:60]:
        live.apply(row)
    live.mark_applied(writer.append(rows[:60]))
    live.save(checkpoint)
    for row in rows[60:]:
        live.apply(row)
    live.mark_applied(writer.append(rows[60:]))
    restored, replayed = FeedbackCore.restore(store, checkpoint)
    assert replayed == 30
    assert restored.learner.state() == live.learner.state()
    assert restored.verdicts == live.verdicts
    assert restored.applied_files == live.applied_files


def test_a_redelivered_label_after_restore_is_a_no_op(tmp_path: Path) -> None:
    store = tmp_path / "store"
    live = FeedbackCore()
    rows = _rows(10)
    for row in rows:
        live.apply(row)
    live.mark_applied(OfflineStoreWriter(store).append(rows))
    restored, _ = FeedbackCore.restore(store, tmp_path / "none.json")
    assert all(restored.apply(row) == "duplicate" for row in rows)
    assert restored.learner.n_learned == 10


def test_an_unreadable_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    path.write_bytes(b'{"format": 99}')
    with pytest.raises(FeedbackError, match="format"):
        FeedbackCore.restore(tmp_path / "store", path)
    path.write_bytes(b"not json")
    with pytest.raises(FeedbackError, match="unreadable"):
        FeedbackCore.restore(tmp_path / "store", path)
