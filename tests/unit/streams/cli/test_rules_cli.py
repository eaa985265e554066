"""``fraudstream rules test`` on the backtest's rows and features, without Kafka."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from models.simulator import SimulatorConfig, simulate_history
from streams.cli import app

RULES = """\
version: 1
rules:
  - id: known_risky_merchant
    description: the merchant's known fraud share, as the scorer reads it from Redis
    expression: merchant_risk > 0
    action: REVIEW
    reason: RISKY_MERCHANT
"""


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = SimulatorConfig(
        users=150, merchants=30, days=17, seed=2, start=datetime(2026, 1, 1, tzinfo=UTC)
    )
    path = tmp_path_factory.mktemp("rules") / "history.parquet"
    simulate_history(config).to_parquet(path)
    return path


def _hits(output: str) -> int:
    row = next(line for line in output.splitlines() if "known_risky_merchant" in line)
    return int(row.split("│")[4].strip().replace(",", ""))


def test_rules_on_label_driven_merchant_risk_fire_once_labels_are_known(
    history: Path, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    runner = CliRunner()
    args = ["rules", "test", str(rules), "--on", str(history)]
    soon = runner.invoke(app, [*args, "--label-delay", "1d"], env={"COLUMNS": "200"})
    assert soon.exit_code == 0, soon.output
    late = runner.invoke(app, [*args, "--label-delay", "30d"], env={"COLUMNS": "200"})
    assert late.exit_code == 0, late.output
    # With labels known after a day, merchants with fraud get a risk and the rule fires;
    # with a delay longer than the history, no label is ever known: it never fires.
    assert _hits(soon.output) > 0
    assert _hits(late.output) == 0
