"""Reading, checking and featurising a hand-made history; labels visible only after the delay."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.backtest import BacktestConfig, BacktestError, parse_bound
from models.backtest._history import NO_LABEL, Prepared, prepare, read_rows
from models.backtest._online import OnlineFeed
from models.backtest._run import schedule
from operators.features import FEATURE_NAMES

T0 = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
DELAY = timedelta(days=1)
RISK = FEATURE_NAMES.index("merchant_risk")


def _write(tmp_path: Path, rows: list[dict[str, object]]) -> Path:
    path = tmp_path / "history.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _row(tx: str, at: datetime, label: int, **changes: object) -> dict[str, object]:
    return {
        "tx_id": tx, "user_id": f"u-{tx}", "merchant_id": "m1", "amount": "20.00",
        "event_time": at.isoformat(), "label": label, **changes,
    }  # fmt: skip


def _prepared(path: Path, **changes: object) -> Prepared:
    config = BacktestConfig(data=path, label_delay=DELAY, **changes)  # type: ignore[arg-type]
    return prepare(read_rows(config), config, time.perf_counter)


@pytest.fixture
def fraud_then_later(tmp_path: Path) -> Prepared:
    """A fraud at the merchant, an event just inside its delay and one just after it."""
    return _prepared(
        _write(
            tmp_path,
            [
                _row("a", T0, 1),
                _row("b", T0 + DELAY - timedelta(minutes=1), 0),
                _row("c", T0 + DELAY + timedelta(minutes=1), 0),
            ],
        )
    )


def test_a_label_inside_the_delay_is_not_in_the_merchant_risk(fraud_then_later: Prepared) -> None:
    risk = fraud_then_later.features[:, RISK]
    assert np.isnan(risk[0]) and np.isnan(risk[1])  # nothing known yet
    assert risk[2] == 1.0  # the fraud became visible a minute before "c"


def test_the_online_learner_learns_a_label_only_once_it_is_visible(
    fraud_then_later: Prepared,
) -> None:
    feed = OnlineFeed(fraud_then_later, "all")
    codes = np.zeros(fraud_then_later.rows, dtype=np.int8)
    inside = int(fraud_then_later.event_ms[1])
    assert feed.learn_until(inside, codes) == 0
    assert feed.scorer(inside) is None  # no online model: the batch is the champion's alone
    after = int(fraud_then_later.event_ms[2])
    assert feed.learn_until(after, codes) == 1
    assert feed.learner.n_learned == 1
    assert feed.scorer(after) is not None
    assert feed.learn_until(after, codes) == 0  # never twice


def test_feedback_labels_are_frauds_and_flagged_legit(tmp_path: Path) -> None:
    rows = [_row(f"t{i}", T0 + timedelta(minutes=i), i % 2) for i in range(6)]
    prepared = _prepared(_write(tmp_path, rows))
    codes = np.array([1, 0, 0, 0, 2, 0], dtype=np.int8)  # t0 reviewed, t4 blocked (both legit)
    feed = OnlineFeed(prepared, "feedback")
    assert feed.learn_until(int(prepared.event_ms[-1]) + 2 * 86_400_000, codes) == 5
    assert feed.learner.n_learned == 5  # 3 frauds + 2 flagged legit; t2 was approved


def test_invalid_rows_go_to_the_dlq_and_repeats_are_decided_once(tmp_path: Path) -> None:
    rows = [
        _row("ok1", T0, 0),
        _row("bad id", T0, 0),
        _row("pan", T0, 0, user_id="4111111111111111"),
        _row("neg", T0, 0, amount="-5.00"),
        _row("ok1", T0 + timedelta(minutes=1), 0),
        _row("country", T0, 0, country="Germany"),
        _row("ok2", T0 + timedelta(minutes=2), 1, country="DE"),
    ]
    prepared = _prepared(_write(tmp_path, rows))
    assert prepared.events == 7
    assert prepared.dlq == 4
    assert prepared.dlq_reasons == {
        "invalid tx_id": 1, "invalid user_id": 1, "invalid amount": 1, "invalid country": 1,
    }  # fmt: skip
    assert prepared.duplicates == 1
    assert prepared.frame["tx_id"].tolist() == ["ok1", "ok2"]
    assert prepared.labels.tolist() == [0, 1]


def test_a_file_without_labels_has_no_label_anywhere(tmp_path: Path) -> None:
    rows = [{k: v for k, v in _row(f"t{i}", T0, 0).items() if k != "label"} for i in range(3)]
    prepared = _prepared(_write(tmp_path, rows))
    assert (prepared.labels == NO_LABEL).all() and not prepared.has_labels
    assert (prepared.known_ms == np.iinfo(np.int64).max).all()


def test_start_and_end_cut_the_replay(tmp_path: Path) -> None:
    rows = [_row(f"t{i}", T0 + timedelta(days=i), 0) for i in range(5)]
    path = _write(tmp_path, rows)
    prepared = _prepared(path, start=T0 + timedelta(days=1), end=T0 + timedelta(days=3))
    assert prepared.frame["tx_id"].tolist() == ["t1", "t2"]
    with pytest.raises(BacktestError, match="no valid transaction"):
        _prepared(path, start=T0 + timedelta(days=10))


def test_the_schedule_puts_models_on_batch_edges(tmp_path: Path) -> None:
    event_ms = np.array([T0.timestamp() * 1000, (T0 + timedelta(days=40)).timestamp() * 1000])
    config = BacktestConfig(data=tmp_path, eval_start=parse_bound("2026-02-20"))
    plan = schedule(event_ms.astype(np.int64), config, labelled=True)
    midnight = int(datetime(2026, 2, 2, tzinfo=UTC).timestamp() * 1000)
    day, week = 86_400_000, 7 * 86_400_000
    eval_ms = int(datetime(2026, 2, 20, tzinfo=UTC).timestamp() * 1000)
    assert plan.warmup_end == midnight + 30 * day
    assert plan.cutoffs == [plan.warmup_end, eval_ms + 2 * week, eval_ms + 3 * week]
    assert set(plan.cutoffs) <= set(plan.edges)
    assert all(b - a <= day for a, b in zip(plan.edges, plan.edges[1:], strict=False))
    never = schedule(
        event_ms.astype(np.int64), BacktestConfig(data=tmp_path, retrain="never"), True
    )
    assert never.cutoffs == [never.warmup_end]


def test_parse_bound_reads_dates_as_whole_days() -> None:
    assert parse_bound("2018-07-01") == datetime(2018, 7, 1, tzinfo=UTC)
    assert parse_bound("2018-08-14", end=True) == datetime(2018, 8, 15, tzinfo=UTC)
    assert parse_bound("2018-08-14T12:00:00Z", end=True) == datetime(2018, 8, 14, 12, tzinfo=UTC)
    with pytest.raises(BacktestError, match="use a date"):
        parse_bound("yesterday")
