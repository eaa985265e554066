"""``fraudstream simulate`` end to end through typer, on a tiny population."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from models.simulator import PATTERNS, read_history
from streams.cli._simulate import simulate


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    app.command()(simulate)
    app.command("other")(lambda: None)  # two commands, so "simulate" is a sub-command
    return app


def test_writes_the_file_and_prints_a_summary(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a short relative path fits the summary table unwrapped
    args = ["simulate", "--users", "120", "--merchants", "40", "--days", "5", "--seed", "3"]
    result = CliRunner().invoke(app, [*args, "--start", "2026-02-01", "--out", "history.parquet"])
    assert result.exit_code == 0, result.output
    frame = read_history(tmp_path / "history.parquet")
    assert frame["event_time"].min() >= pd.Timestamp("2026-02-01", tz="UTC")
    assert frame["user_id"].nunique() <= 120
    for word in ("rows", "fraud rate", *PATTERNS, "history.parquet"):
        assert word in result.output
    assert f"{len(frame):,}" in result.output


def test_same_options_write_the_same_csv(app: typer.Typer, tmp_path: Path) -> None:
    args = ["simulate", "--users", "30", "--merchants", "12", "--days", "2"]
    for name in ("a.csv", "b.csv"):
        result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--out", "history.json"], ".parquet or .csv"),
        (["--out", "h.csv", "--users", "2"], "users must be at least"),
        (["--out", "h.csv", "--start", "yesterday"], "ISO 8601"),
        (["--out", "h.csv", "--fraud-rate", "0"], "fraud rate"),
    ],
)
def test_bad_options_fail_fast_with_usage_exit_code(
    app: typer.Typer,
    tmp_path: Path,
    extra: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["simulate", *extra])
    assert result.exit_code == 2
    assert message in result.output
    assert not list(tmp_path.iterdir())
