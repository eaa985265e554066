"""The backtest end to end on a small history: the report files, the lifecycle, point in time."""

from __future__ import annotations

import dataclasses
import math
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from models.backtest import BacktestConfig, BacktestError, run_backtest
from tests.unit.models.backtest.conftest import DELAY, EVAL_START, START, Run, run, small_config

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS

# The shape: key -> type (dict: nested shape). Extras are documented in the README.
SUMMARY_SHAPE: dict[str, object] = {
    "events": int,
    "decided": int,
    "dlq": int,
    "elapsed_s": float,
    "throughput_eps": float,
    "eval": {
        "start": str, "end": str, "auc": float, "ap": float, "cp100": float,
        "block": {"precision": float, "recall": float},
        "review": {"precision": float, "recall": float},
    },
    "weeks": [{"start": str, "auc": float, "ap": float, "cp100": float, "model_version": str}],
    "models": [{
        "version": str, "trained_at": str, "role": str, "verdict": str, "train_rows": int,
        "frauds": int, "gate_reason": str, "validation": {"auc": float, "ap": float},
    }],
    "protocol": {
        "data": str, "mapping": list, "eval_start": str, "label_delay": str, "retrain": str,
        "warmup": str, "rules": str, "online_weight": float,
    },
    "timing": {"stages": dict, "batches": [{"start": str, "rows": int, "seconds": float}]},
    "rules": [{"id": str, "action": str, "hits": int, "fraud_hits": int}],
    "caught": {"rules_only": int, "model_only": int, "both": int, "missed": int},
}  # fmt: skip

DECISION_COLUMNS = {
    "tx_id": pa.string(),
    "user_id": pa.string(),
    "merchant_id": pa.string(),
    "event_time": pa.timestamp("ms", tz="UTC"),
    "amount": pa.float64(),
    "label": pa.int8(),
    "label_known_at": pa.timestamp("ms", tz="UTC"),
    "decision": pa.string(),
    "score": pa.float64(),
    "champion_score": pa.float64(),
    "online_score": pa.float64(),
    "model_version": pa.string(),
    "rules_fired": pa.list_(pa.string()),
    "reasons": pa.list_(pa.string()),
    "degraded": pa.bool_(),
    "batch_seconds": pa.float64(),
}


def _check_shape(value: object, shape: object, where: str) -> None:
    if isinstance(shape, dict):
        assert isinstance(value, dict), where
        for key, inner in shape.items():
            assert key in value, f"{where}.{key} is missing"
            _check_shape(value[key], inner, f"{where}.{key}")
    elif isinstance(shape, list):
        assert isinstance(value, list) and value, f"{where} must be a non-empty list"
        for index, item in enumerate(value):
            _check_shape(item, shape[0], f"{where}[{index}]")
    elif shape is float:
        assert isinstance(value, int | float) and not isinstance(value, bool), where
    else:
        assert isinstance(value, shape), f"{where}: {type(value).__name__} is not {shape}"  # type: ignore[arg-type]


def test_summary_json_has_the_documented_shape_and_no_nan(backtest: Run) -> None:
    _check_shape(backtest.summary, SUMMARY_SHAPE, "summary")
    assert (
        backtest.summary["events"]
        == backtest.summary["decided"] + backtest.summary["dlq"] + backtest.summary["duplicates"]
    )
    text = (backtest.folder / "summary.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert backtest.returned["eval"] == backtest.summary["eval"]


def test_decisions_parquet_has_the_contract_columns(backtest: Run) -> None:
    schema = pq.read_schema(backtest.folder / "decisions.parquet")
    for name, kind in DECISION_COLUMNS.items():
        assert schema.field(name).type == kind, name
    decisions = backtest.decisions
    assert len(decisions) == backtest.summary["decided"]
    assert set(decisions["decision"]) <= {"APPROVE", "REVIEW", "BLOCK"}
    assert decisions["event_time"].is_monotonic_increasing
    labelled = decisions["label"] >= 0
    delay = decisions.loc[labelled, "label_known_at"] - decisions.loc[labelled, "event_time"]
    assert (delay == pd.Timedelta(DELAY)).all()


def test_rules_only_until_the_warmup_ends_then_a_model_decides(backtest: Run) -> None:
    decisions = backtest.decisions
    warm = pd.Timestamp(START + timedelta(days=7))
    before = decisions[decisions["event_time"] < warm]
    after = decisions[decisions["event_time"] >= warm]
    assert before["score"].isna().all() and before["model_version"].isna().all()
    assert before["degraded"].all()
    assert after["score"].notna().all() and not after["degraded"].any()
    assert backtest.summary["models"][0]["trained_at"] == "2026-01-08T00:00:00Z"


def test_a_retrain_happens_exactly_at_each_week_boundary(backtest: Run) -> None:
    trained = [pd.Timestamp(model["trained_at"]) for model in backtest.summary["models"]]
    # warm-up end (day 7), then the week boundaries counted from the eval start (day 14)
    assert trained == [pd.Timestamp(START + timedelta(days=d)) for d in (7, 14, 21)]
    decisions = backtest.decisions.set_index("event_time")
    for model in backtest.summary["models"]:
        if model["verdict"] != "champion":
            continue
        moment = pd.Timestamp(model["trained_at"])
        first = decisions.loc[decisions.index >= moment].iloc[0]
        assert first["model_version"] == model["version"]
        last_before = decisions.loc[decisions.index < moment].iloc[-1]
        assert last_before["model_version"] != model["version"]


def test_every_model_was_trained_on_labels_known_at_its_cutoff(backtest: Run) -> None:
    for model in backtest.summary["models"]:
        known_at = pd.Timestamp(model["labels_to"]) + pd.Timedelta(DELAY)
        assert known_at < pd.Timestamp(model["trained_at"])
    versions = {m["version"]: pd.Timestamp(m["trained_at"]) for m in backtest.summary["models"]}
    decided = backtest.decisions.dropna(subset=["model_version"])
    assert (decided["event_time"] >= decided["model_version"].map(versions)).all()


def test_weeks_start_at_the_eval_start_and_cover_the_window(backtest: Run) -> None:
    weeks = backtest.summary["weeks"]
    assert [week["start"] for week in weeks] == ["2026-01-15T00:00:00Z", "2026-01-22T00:00:00Z"]
    assert backtest.summary["eval"]["start"] == "2026-01-15T00:00:00Z"
    assert all(0.5 < week["auc"] <= 1.0 for week in weeks)


def _flipped(history: pd.DataFrame, folder: Path) -> tuple[Path, pd.Timestamp]:
    """The history with one fraud after the warm-up relabelled legit, and when it is known."""
    frauds = history.index[(history["label"] == 1) & (history["event_time"] > EVAL_START)]
    row = int(frauds[0])
    changed = history.copy()
    changed.loc[row, "label"] = 0
    path = folder / "flipped.parquet"
    changed.to_parquet(path)
    return path, history.loc[row, "event_time"] + pd.Timedelta(DELAY)


def test_a_label_inside_the_delay_never_changes_a_decision(
    backtest: Run, history: pd.DataFrame, tmp_path: Path
) -> None:
    path, known_at = _flipped(history, tmp_path)
    other = run(dataclasses.replace(backtest.config, data=path), tmp_path / "out")
    columns = ["score", "champion_score", "online_score", "decision", "model_version"]
    mine, theirs = backtest.decisions, other.decisions
    before = mine["event_time"] < known_at
    pd.testing.assert_frame_equal(mine.loc[before, columns], theirs.loc[before, columns])
    after = ~before
    changed = ~np.isclose(
        mine.loc[after, "score"], theirs.loc[after, "score"], rtol=0, atol=0, equal_nan=True
    )
    assert changed.any()  # once known, the label does change later scores


def test_without_labels_every_decision_is_rules_only(history: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "unlabelled.parquet"
    history.drop(columns=["label"]).to_parquet(path)
    result = run(small_config(path), tmp_path / "out")
    assert result.summary["models"] == []
    assert result.decisions["score"].isna().all()
    assert (result.decisions["label"] == -1).all()
    assert result.summary["eval"]["auc"] is None


def test_a_training_worker_process_trains_the_same_models(
    backtest: Run, history_file: Path, tmp_path: Path
) -> None:
    config = small_config(history_file, workers=1, end=START + timedelta(days=15))
    result = run(config, tmp_path / "out")
    assert [m["version"] for m in result.summary["models"]] == [
        m["version"] for m in backtest.summary["models"][:2]
    ]
    first = result.summary["models"][0]["validation"]
    assert math.isclose(first["auc"], backtest.summary["models"][0]["validation"]["auc"])


def test_refuses_a_bad_protocol_before_reading(tmp_path: Path) -> None:
    with pytest.raises(BacktestError, match="eval_start"):
        BacktestConfig(data=tmp_path, eval_start=EVAL_START, eval_end=START)
    with pytest.raises(BacktestError, match="online_weight"):
        BacktestConfig(data=tmp_path, online_weight=1.5)
    with pytest.raises(BacktestError, match="no such file"):
        run_backtest(BacktestConfig(data=tmp_path / "missing.parquet"), tmp_path / "out")


def test_weekly_boundaries_are_whole_weeks_after_the_eval_start(backtest: Run) -> None:
    starts = [pd.Timestamp(m["trained_at"]).value // 1_000_000 for m in backtest.summary["models"]]
    eval_ms = pd.Timestamp(EVAL_START).value // 1_000_000
    assert all((start - eval_ms) % WEEK_MS == 0 for start in starts[1:])


def test_a_failed_training_keeps_rules_only_until_a_model_succeeds(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    early = history["event_time"] < pd.Timestamp(START + timedelta(days=5))
    path = tmp_path / "no_early_fraud.parquet"
    history.assign(label=history["label"].where(~early, 0)).to_parquet(path)
    result = run(small_config(path, end=START + timedelta(days=16)), tmp_path / "out")
    first, second = result.summary["models"]
    assert first["verdict"] == "failed" and first["version"] is None
    assert "fraud and legit" in first["gate_reason"]
    assert second["verdict"] == "champion" and "first model" in second["gate_reason"]
    decisions = result.decisions
    before = decisions["event_time"] < pd.Timestamp(second["trained_at"])
    assert decisions.loc[before, "score"].isna().all()
    assert decisions.loc[~before, "model_version"].eq(second["version"]).all()
