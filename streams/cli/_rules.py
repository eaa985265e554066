"""``fraudstream rules``: check a rules file on labelled history before it goes live."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from streams.cli._common import console, friendly_errors

__all__ = ["rules_app"]

rules_app = typer.Typer(help="Check rules files.", no_args_is_help=True)


@rules_app.command("test")
def rules_test(
    rules_file: Annotated[Path, typer.Argument(help="The rules YAML to check.")],
    data: Annotated[Path, typer.Option("--on", help="Labelled history (Parquet or CSV).")],
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="field=COLUMN for files with other column names."),
    ] = None,
    label_delay: Annotated[
        str, typer.Option(help="Time until a label is known (for merchant_risk), e.g. 7d.")
    ] = "7d",
) -> None:
    """Each rule's hits, hit rate and precision (fraud among hits) on labelled history.

    The rows and features are the backtest's (`fraudstream backtest`): the scorer's
    checks, one decision per tx_id, velocity features from the live operators and
    `merchant_risk` from the labels known `--label-delay` after each transaction, so a
    rule is measured on exactly what it would see live.
    """
    from datetime import timedelta

    from rich.table import Table

    from models.backtest import BacktestConfig
    from models.backtest._decide import rule_columns
    from models.backtest._history import prepare, read_rows
    from models.pit import parse_duration
    from operators.features import FEATURE_NAMES
    from operators.rules import RuleSet, rule_report

    with friendly_errors(), console.status("loading") as status:
        rules = RuleSet.from_file(rules_file)
        delay: timedelta = parse_duration(label_delay)
        config = BacktestConfig(data=data, mapping=tuple(mapping or ()), label_delay=delay)
        rows = read_rows(config)
        if "label" not in rows.columns:
            raise typer.BadParameter("the file has no label column (use --map label=COLUMN)")
        status.update(f"computing features for {len(rows):,} transactions")
        prepared = prepare(rows, config, time.perf_counter)
        frame = prepared.frame
        batch: dict[str, object] = {
            name: prepared.features[:, i] for i, name in enumerate(FEATURE_NAMES)
        }
        batch.update(rule_columns(frame))
        stats = rule_report(rules, batch, frame["label"].to_numpy())
    frauds = int(frame["label"].sum())
    table = Table(
        "rule", "action", "mode", "hits", "hit rate", "precision", "recall",
        title=f"{rules_file} on {len(frame):,} transactions ({frauds:,} fraud)",
    )  # fmt: skip
    for row in stats:
        table.add_row(
            row.rule_id,
            row.action,
            "shadow" if row.shadow else "active",
            f"{row.hits:,}",
            f"{row.hit_rate:.3%}",
            "-" if row.precision is None else f"{row.precision:.1%}",
            "-" if row.recall is None else f"{row.recall:.1%}",
        )
    console.print(table)
