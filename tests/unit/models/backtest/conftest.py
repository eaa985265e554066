"""A small simulated history and one backtest of it, shared by the backtest tests.

Four weeks of 300 simulated users: a 7-day warm-up, a 2-day label delay, weekly retrains
counted from the evaluation start (day 14) and small single-threaded XGBoost members
trained in-process, so one run takes seconds.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest

from models.backtest import BacktestConfig, run_backtest
from models.simulator import SimulatorConfig, simulate_history

START = datetime(2026, 1, 1, tzinfo=UTC)
EVAL_START = START + timedelta(days=14)
DELAY = timedelta(days=2)


@pytest.fixture(scope="session")
def history() -> pd.DataFrame:
    return simulate_history(SimulatorConfig(users=300, merchants=60, days=28, seed=5, start=START))


@pytest.fixture(scope="session")
def history_file(history: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("history") / "history.parquet"
    history.to_parquet(path)
    return path


def small_config(data: Path, **changes: Any) -> BacktestConfig:
    """The shared protocol: quick members, no worker processes."""
    config = BacktestConfig(
        data=data,
        eval_start=EVAL_START,
        label_delay=DELAY,
        warmup=timedelta(days=7),
        train_window=timedelta(days=7),
        members=("xgboost",),
        n_estimators=20,
        workers=0,
    )
    return dataclasses.replace(config, **changes)


@dataclasses.dataclass(frozen=True)
class Run:
    """A finished backtest: its folder, summary (as written) and decisions."""

    folder: Path
    summary: dict[str, Any]
    returned: dict[str, Any]
    decisions: pd.DataFrame
    config: BacktestConfig


def run(config: BacktestConfig, folder: Path) -> Run:
    returned = run_backtest(config, folder)
    summary = orjson.loads((folder / "summary.json").read_bytes())
    decisions = pd.read_parquet(folder / "decisions.parquet")
    return Run(folder, summary, returned, decisions, config)


@pytest.fixture(scope="session")
def backtest(history_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run(small_config(history_file), tmp_path_factory.mktemp("backtest"))
