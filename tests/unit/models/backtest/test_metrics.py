"""The evaluation protocol on hand-made cases whose answers are known."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from models._handbook_protocol import ProtocolWindows, handbook_test_mask
from models.backtest._metrics import DAY_MS, WEEK_MS, Window, evaluate_window, protocol_mask

T0 = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp() * 1000)  # a Monday, midnight UTC
DELAY = 7 * DAY_MS


def _window(
    event_ms: list[int], users: list[int], labels: list[int], scores: list[float]
) -> Window:
    rows = len(event_ms)
    return Window(
        event_ms=np.array(event_ms, dtype=np.int64),
        labels=np.array(labels, dtype=np.int8),
        users=np.array(users, dtype=np.int64),
        scores=np.array(scores, dtype=np.float64),
        codes=np.zeros(rows, dtype=np.int8),
        versions=np.full(rows, "m1", dtype=object),
    )


def test_card_precision_at_100_by_hand() -> None:
    """Day 1: 150 customers, the 30 frauds ranked first -> 30/100. Day 2: 120 customers,
    10 frauds ranked first, 5 more below the top 100 -> 10/100. Mean: 0.2."""
    times, users, labels, scores = [], [], [], []
    for user in range(150):
        fraud = user < 30
        times.append(T0 + 3_600_000)
        users.append(user)
        labels.append(int(fraud))
        scores.append(0.9 - user * 0.001 if fraud else 0.5 - user * 0.001)
    for user in range(1000, 1120):
        fraud = user < 1010 or user >= 1115
        times.append(T0 + DAY_MS + 3_600_000)
        users.append(user)
        labels.append(int(fraud))
        scores.append(0.9 - user * 1e-5 if user < 1010 else 0.4 - user * 1e-5)
    summary, weeks, rows = evaluate_window(
        _window(times, users, labels, scores), T0, T0 + 2 * DAY_MS, DELAY
    )
    assert summary["cp100"] == pytest.approx(0.2)
    assert weeks[0]["cp100"] == pytest.approx(0.2)
    assert rows.all()


def test_a_customer_whose_fraud_was_known_is_left_out_of_that_day() -> None:
    """User 7's fraud 8 days before the week is known on day 0 (7-day delay): left out.
    User 8's fraud 6 days and an hour before is known during day 0: kept on day 0, out on
    day 1 (a label must be visible before the day begins)."""
    event_ms = [T0 - 8 * DAY_MS, T0 - 6 * DAY_MS - 3_600_000, T0 + 10, T0 + 20, T0 + DAY_MS + 10]
    users = [7, 8, 7, 8, 8]
    labels = [1, 1, 0, 1, 0]
    keep = protocol_mask(
        np.array(event_ms), np.array(users), np.array(labels, dtype=np.int8), T0, T0 + WEEK_MS,
        DELAY,
    )  # fmt: skip
    assert keep.tolist() == [False, False, False, True, False]


def test_the_protocol_is_the_handbooks_on_whole_days() -> None:
    rng = np.random.default_rng(3)
    rows = 5_000
    windows = ProtocolWindows(datetime(2026, 3, 2, tzinfo=UTC) - np.timedelta64(14, "D").item())
    start = T0 - 21 * DAY_MS
    event_ms = np.sort(rng.integers(start, T0 + WEEK_MS, rows))
    users = rng.integers(0, 300, rows)
    labels = (rng.random(rows) < 0.05).astype(np.int8)
    ours = protocol_mask(event_ms, users, labels, T0, T0 + WEEK_MS, DELAY)
    theirs = handbook_test_mask(event_ms, users, labels, windows)
    assert windows.describe()["test"].startswith("2026-03-02")
    np.testing.assert_array_equal(ours, theirs)


def test_operating_points_count_decisions() -> None:
    window = _window(
        [T0 + i for i in range(6)],
        list(range(6)),
        [1, 1, 0, 1, 0, 0],
        [0.9, 0.8, 0.7, 0.1, 0.2, 0.3],
    )
    codes = np.array([2, 1, 2, 0, 1, 0], dtype=np.int8)
    window = Window(window.event_ms, window.labels, window.users, window.scores, codes,
                    window.versions)  # fmt: skip
    summary, _, _ = evaluate_window(window, T0, T0 + DAY_MS, DELAY)
    assert summary["block"] == {"precision": 0.5, "recall": pytest.approx(1 / 3)}
    assert summary["review"] == {"precision": 0.5, "recall": pytest.approx(1 / 3)}
    assert summary["auc"] == pytest.approx(2 / 3)  # 6 of 9 fraud/legit pairs ranked right


def test_rules_only_rows_have_no_ranking_metrics() -> None:
    window = _window([T0, T0 + 1], [1, 2], [1, 0], [float("nan"), float("nan")])
    summary, weeks, _ = evaluate_window(window, T0, T0 + DAY_MS, DELAY)
    assert summary["auc"] is None and summary["cp100"] is None
    assert weeks[0]["model_version"] == "m1"
