"""``fraudstream simulate``: write a synthetic, labelled transaction history to a file.

Data scientists need traffic whose fraud is known to train and backtest against; this
command writes it in the same shape as production traffic, plus ``label`` and ``pattern``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from streams.cli._common import console, fail, friendly_errors

__all__ = ["simulate"]

_STAGES = ("population", "genuine transactions", "fraud episodes", "ordering", "rendering")


def _parse_start(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"--start {text!r} is not an ISO 8601 date or time", code=2) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def simulate(
    out: Annotated[
        Path, typer.Option("--out", help="Output file; .parquet or .csv.", show_default=False)
    ],
    users: Annotated[int, typer.Option(help="Number of cardholders.")] = 2000,
    merchants: Annotated[int, typer.Option(help="Number of merchants.")] = 500,
    days: Annotated[int, typer.Option(help="Days of history.")] = 30,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed writes the same rows.")] = 7,
    fraud_rate: Annotated[
        float, typer.Option(help="Target share of fraudulent transactions.")
    ] = 0.008,
    start: Annotated[
        str, typer.Option(help="First day, ISO 8601; without a zone it is UTC.")
    ] = "2026-01-01T00:00:00Z",
) -> None:
    """Write a synthetic labelled transaction history to Parquet or CSV.

    Users with homes and habits, merchants, daily and weekly rhythm, and five
    fraud patterns: card_testing, account_takeover, impossible_travel,
    compromised_merchant and spending_spree. Each row is a Transaction plus
    `label` (0/1) and `pattern` (empty when legit), sorted by event time.
    The same options always write the same file.
    """
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from models.exceptions import SimulatorError
    from models.simulator import (
        PATTERNS,
        SimulatorConfig,
        history_format,
        simulate_history,
        write_history,
    )

    try:  # a bad option is a usage error (exit 2), found before any work is done
        history_format(out)
        config = SimulatorConfig(
            users=users,
            merchants=merchants,
            days=days,
            seed=seed,
            fraud_rate=fraud_rate,
            start=_parse_start(start),
        )
    except SimulatorError as exc:
        raise fail(str(exc), code=2) from None
    with friendly_errors():
        started = time.perf_counter()
        progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description:<22}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        with progress:
            task = progress.add_task("simulating", total=len(_STAGES) + 1)

            def on_stage(stage: str) -> None:
                progress.update(task, description=stage, completed=_STAGES.index(stage))

            frame = simulate_history(config, on_stage=on_stage)
            progress.update(task, description=f"writing {out.name}", completed=len(_STAGES))
            written = write_history(frame, out)
            progress.update(task, completed=len(_STAGES) + 1)
        elapsed = time.perf_counter() - started

    rows = len(frame)
    fraud = int(frame["label"].sum())
    per_pattern = frame.loc[frame["label"] == 1, "pattern"].value_counts()
    summary = Table(title="simulated history", show_header=False, title_justify="left")
    summary.add_column(style="bold")
    summary.add_column(justify="right")
    summary.add_row("rows", f"{rows:,}")
    summary.add_row("users", f"{frame['user_id'].nunique():,} of {users:,}")
    summary.add_row("merchants", f"{frame['merchant_id'].nunique():,} of {merchants:,}")
    summary.add_row("from", f"{frame['event_time'].min():%Y-%m-%d %H:%M:%S}Z" if rows else "-")
    summary.add_row("to", f"{frame['event_time'].max():%Y-%m-%d %H:%M:%S}Z" if rows else "-")
    summary.add_row("fraud rows", f"{fraud:,}")
    summary.add_row("fraud rate", f"{fraud / max(rows, 1):.3%} (target {fraud_rate:.3%})")
    for pattern in PATTERNS:
        summary.add_row(f"  {pattern}", f"{int(per_pattern.get(pattern, 0)):,}")
    summary.add_row("output", str(written))
    summary.add_row("took", f"{elapsed:.1f} s")
    console.print(summary)
