"""The handbook protocol: window arithmetic, its test-set rule, CP@k, and a tiny full run."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from models.evaluation import card_precision_at_k
from models.exceptions import EvaluationError
from models.handbook import (
    HANDBOOK_TRAIN_START,
    MODEL_FEATURES,
    Featurised,
    HandbookSettings,
    ProtocolWindows,
    evaluate_fold,
    handbook_card_precision,
    handbook_test_mask,
    prequential_windows,
    render_markdown,
)

DAY_MS = 86_400_000


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_the_handbook_windows() -> None:
    windows = ProtocolWindows(HANDBOOK_TRAIN_START)
    assert windows.describe() == {
        "train": "2018-07-25..2018-07-31",
        "delay": "2018-08-01..2018-08-07",
        "test": "2018-08-08..2018-08-14",
    }
    assert windows.test_end == datetime(2018, 8, 15, tzinfo=UTC)  # the data's last day + 1
    # every training label (event < train_end) is known by the first test instant
    assert windows.train_end + windows.label_delay == windows.test_start


def test_prequential_folds_step_back_one_week_each() -> None:
    folds = prequential_windows(ProtocolWindows(HANDBOOK_TRAIN_START), 4)
    assert [f.describe()["train"][:10] for f in folds] == [
        "2018-07-25",
        "2018-07-18",
        "2018-07-11",
        "2018-07-04",
    ]
    assert [f.describe()["test"] for f in folds][-1] == "2018-07-18..2018-07-24"
    steps = {a.test_start - b.test_start for a, b in itertools.pairwise(folds)}
    assert steps == {timedelta(days=7)}


def test_windows_refuse_a_start_that_is_not_a_utc_midnight() -> None:
    with pytest.raises(EvaluationError, match="midnight"):
        ProtocolWindows(datetime(2018, 7, 25, 6, tzinfo=UTC))
    with pytest.raises(EvaluationError, match="UTC"):
        ProtocolWindows(datetime(2018, 7, 25))
    with pytest.raises(EvaluationError):
        prequential_windows(ProtocolWindows(HANDBOOK_TRAIN_START), 0)


def test_the_test_set_drops_customers_whose_fraud_was_known_before_the_day() -> None:
    windows = ProtocolWindows(HANDBOOK_TRAIN_START)
    rows = [
        # (user, event time, label)
        ("A", "2018-07-26T10:00:00", 1),  # fraud in the training week: known all test week
        ("A", "2018-08-08T09:00:00", 0),
        ("B", "2018-08-01T10:00:00", 1),  # delay day 1: known at 08-08 10:00, i.e. not before 08-08
        ("B", "2018-08-08T12:00:00", 0),  # kept (the handbook counts whole days)
        ("B", "2018-08-09T12:00:00", 0),  # dropped
        ("C", "2018-07-20T10:00:00", 1),  # before the training start: the handbook ignores it
        ("C", "2018-08-10T10:00:00", 0),
        ("D", "2018-08-14T23:59:59", 1),  # last test instant, clean customer
        ("D", "2018-08-15T00:00:00", 0),  # after the test week
    ]
    users = np.array([r[0] for r in rows], dtype=object)
    times = np.array([_ms(r[1]) for r in rows], dtype=np.int64)
    labels = np.array([r[2] for r in rows], dtype=np.int8)
    kept = handbook_test_mask(times, users, labels, windows)
    assert kept.tolist() == [False, False, False, True, False, False, True, True, False]


def test_card_precision_leaves_out_customers_caught_on_earlier_days() -> None:
    day1, day2 = np.datetime64("2018-08-08"), np.datetime64("2018-08-09")
    rows = [
        # (day, user, score, label)
        (day1, "u1", 0.9, 1),
        (day1, "u1", 0.2, 0),  # the customer's max score and max label count
        (day1, "u2", 0.8, 0),
        (day1, "u3", 0.1, 1),
        (day2, "u1", 0.95, 1),  # caught on day 1: left out
        (day2, "u3", 0.7, 1),
        (day2, "u2", 0.6, 0),
        (day2, "u4", 0.5, 0),
    ]
    days = np.array([r[0] for r in rows])
    users = np.array([r[1] for r in rows], dtype=object)
    scores = np.array([r[2] for r in rows])
    labels = np.array([r[3] for r in rows], dtype=np.int8)
    handbook = handbook_card_precision(scores, labels, users, days, k=2)
    assert handbook.per_day == (0.5, 0.5)  # day 2's top 2: u3 (fraud), u2 (legit)
    assert handbook.mean == 0.5
    assert handbook.compromised_per_day == (2, 1)
    plain = handbook_card_precision(scores, labels, users, days, k=2, remove_detected=False)
    assert plain.per_day == (0.5, 1.0)  # u1 and u3 on day 2
    assert plain.mean == card_precision_at_k(scores, labels, users, days, k=2) == 0.75


def _synthetic(weeks: int = 3, per_day: int = 120, seed: int = 3) -> Featurised:
    """Featurised rows whose first column carries the label, the rest noise."""
    rng = np.random.default_rng(seed)
    count = weeks * 7 * per_day
    start = _ms("2018-07-25T00:00:00")
    times = np.sort(rng.integers(start, start + weeks * 7 * DAY_MS, count))
    labels = (rng.random(count) < 0.08).astype(np.int8)
    matrix = rng.normal(size=(count, len(MODEL_FEATURES))).astype(np.float32)
    matrix[:, 0] += 3.0 * labels
    users = np.array([f"c{i}" for i in rng.integers(0, 400, count)], dtype=object)
    return Featurised(matrix, times.astype(np.int64), users, labels, {})


def test_a_fold_trains_publishes_and_scores_through_onnx(tmp_path: Path) -> None:
    settings = HandbookSettings(n_estimators=20, max_depth=2, n_jobs=1)
    windows = ProtocolWindows(HANDBOOK_TRAIN_START)
    result = evaluate_fold(_synthetic(), windows, settings, tmp_path / "fold")
    assert (tmp_path / "fold" / "manifest.json").exists()
    assert result["auc"] > 0.9  # the signal column is found
    assert 0.0 <= result["cp_at_100"] <= 1.0
    assert set(result["members"]) == {"xgboost", "logreg"}
    assert result["windows"]["test"] == "2018-08-08..2018-08-14"
    report = {
        "fixed": result,
        "prequential": {
            "folds": [result],
            **{m: {"mean": result[m], "std": 0.0} for m in ("auc", "ap", "cp_at_100")},
        },
        "feature_names": list(MODEL_FEATURES),
        "timings": {"velocity_rows_per_s": 1.0, "label_rows_per_s": 2.0, "total_seconds": 3.0},
    }
    table = render_markdown(report)
    assert "| logistic regression (chapter 3) | 0.871 | 0.606 | 0.291 |" in table
    assert f"| {result['auc']:.3f} |" in table.split("fraudstream ensemble (test")[1]
