"""``fraudstream backtest`` on a small simulated history, without Kafka."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from models.simulator import SimulatorConfig, simulate_history
from streams.cli import app


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = simulate_history(
        SimulatorConfig(
            users=150, merchants=30, days=17, seed=2, start=datetime(2026, 1, 1, tzinfo=UTC)
        )
    )
    path = tmp_path_factory.mktemp("cli") / "history.parquet"
    frame.to_parquet(path)
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_backtest_writes_the_report_folder(history: Path, tmp_path: Path) -> None:
    report = tmp_path / "report"
    code, output = run(
        "backtest", str(history), "--report", str(report), "--warmup", "7d",
        "--label-delay", "2d", "--eval-start", "2026-01-10", "--workers", "0",
    )  # fmt: skip
    assert code == 0, output
    summary = orjson.loads((report / "summary.json").read_bytes())
    assert summary["protocol"]["eval_start"] == "2026-01-10T00:00:00Z"
    assert summary["protocol"]["online_weight"] == 0.2  # FRAUD_ONLINE_WEIGHT's default
    assert (report / "decisions.parquet").is_file()
    assert f"{summary['decided']:,} decided" in output
    assert "2026-01-10" in output  # the weekly table


def test_a_bad_option_is_one_red_line(history: Path, tmp_path: Path) -> None:
    code, output = run("backtest", str(history), "--report", str(tmp_path), "--retrain", "daily")
    assert code == 1
    assert "error:" in output and "weekly or never" in output
