"""``fraudstream backtest``: the whole system replayed over a history file, with a report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from streams.cli._common import console, friendly_errors

if TYPE_CHECKING:
    from models.backtest import BacktestConfig

__all__ = ["backtest"]


def backtest(
    data: Annotated[Path, typer.Argument(help="History to replay (Parquet or CSV).")],
    report: Annotated[Path, typer.Option("--report", help="Folder for the report files.")],
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="field=COLUMN for files with other column names."),
    ] = None,
    start: Annotated[str | None, typer.Option(help="Replay from this date/time (UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="Replay up to this date (inclusive).")] = None,
    eval_start: Annotated[
        str | None, typer.Option(help="Evaluate from this date (default: the warm-up end).")
    ] = None,
    eval_end: Annotated[
        str | None, typer.Option(help="Evaluate up to this date (inclusive; default: the end).")
    ] = None,
    label_delay: Annotated[
        str, typer.Option(help="Time until a transaction's label is visible (7d, 12h...).")
    ] = "7d",
    retrain: Annotated[
        str, typer.Option(help="weekly: train and gate a candidate every week; never.")
    ] = "weekly",
    warmup: Annotated[
        str, typer.Option(help="Rules-only period before the first model is trained.")
    ] = "30d",
    rules: Annotated[
        Path | None, typer.Option(help="Rules YAML (default: the shipped rules).")
    ] = None,
    train_window: Annotated[
        str, typer.Option(help="Event time of the known labels each model trains on.")
    ] = "7d",
    online_weight: Annotated[
        float | None,
        typer.Option(
            help="Weight of the online model (default: FRAUD_ONLINE_WEIGHT).", min=0, max=1
        ),
    ] = None,
    online_labels: Annotated[
        str,
        typer.Option(help="Labels the online learner gets: feedback (frauds + reviewed) or all."),
    ] = "feedback",
    champion_features: Annotated[
        str,
        typer.Option(help="live, or decision: what-if, the champion also reads merchant labels."),
    ] = "live",
    batch: Annotated[str, typer.Option(help="Event time decided per micro-batch.")] = "1d",
    workers: Annotated[
        int, typer.Option(help="Processes training candidates ahead (0: in-process).", min=0)
    ] = 2,
) -> None:
    """Backtest the scoring dataflow in-process over DATA, in event-time order.

    Labels become visible LABEL_DELAY after each transaction and feed the online learner
    and the weekly retrain with its gate, as the feedback loop does live. Rules decide
    alone until the first model exists (the end of the warm-up). Writes summary.json,
    decisions.parquet and report.html to --report.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from models.backtest import run_backtest

    with friendly_errors():
        config = _config(
            data, mapping, start, end, eval_start, eval_end, label_delay, retrain, warmup,
            rules, train_window, online_weight, online_labels, champion_features, batch, workers,
        )  # fmt: skip
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        with progress:
            task = progress.add_task("reading", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            summary = run_backtest(
                config,
                report,
                on_progress=advance,
                on_stage=lambda stage: progress.update(task, description=stage),
            )
    _print(summary, report)


def _config(
    data: Path,
    mapping: list[str] | None,
    start: str | None,
    end: str | None,
    eval_start: str | None,
    eval_end: str | None,
    label_delay: str,
    retrain: str,
    warmup: str,
    rules: Path | None,
    train_window: str,
    online_weight: float | None,
    online_labels: str,
    champion_features: str,
    batch: str,
    workers: int,
) -> BacktestConfig:
    from models.backtest import BacktestConfig, BacktestError, parse_bound
    from models.pit import parse_duration
    from streams.settings import get_settings

    settings = get_settings()
    if retrain not in ("weekly", "never"):
        raise BacktestError(f"--retrain must be weekly or never, got {retrain!r}")
    if online_labels not in ("feedback", "all") or champion_features not in ("live", "decision"):
        raise BacktestError("--online-labels is feedback|all, --champion-features live|decision")
    return BacktestConfig(
        data=data,
        mapping=tuple(mapping or ()),
        start=None if start is None else parse_bound(start),
        end=None if end is None else parse_bound(end, end=True),
        eval_start=None if eval_start is None else parse_bound(eval_start),
        eval_end=None if eval_end is None else parse_bound(eval_end, end=True),
        label_delay=parse_duration(label_delay),
        retrain="weekly" if retrain == "weekly" else "never",
        warmup=parse_duration(warmup),
        rules=rules,
        online_weight=settings.online_weight if online_weight is None else online_weight,
        online_labels="all" if online_labels == "all" else "feedback",
        champion_features="decision" if champion_features == "decision" else "live",
        train_window=parse_duration(train_window),
        batch=parse_duration(batch),
        block_target_precision=settings.block_target_precision,
        review_share=settings.review_share,
        workers=workers,
    )


def _print(summary: dict[str, Any], report: Path) -> None:
    from rich.table import Table

    def number(value: Any) -> str:
        return "-" if value is None else f"{value:.3f}"

    console.print(
        f"{summary['events']:,} events, {summary['decided']:,} decided, {summary['dlq']:,} to "
        f"the DLQ in {summary['elapsed_s']:.1f} s ({summary['throughput_eps']:,.0f} events/s)"
    )
    evaluation = summary["eval"]
    table = Table("week", "AUC", "AP", "CP@100", "model", title="Evaluation (handbook protocol)")
    for week in summary["weeks"]:
        table.add_row(
            week["start"][:10], number(week["auc"]), number(week["ap"]), number(week["cp100"]),
            week["model_version"] or "rules only",
        )  # fmt: skip
    last_day = _last_day(evaluation["end"])
    table.add_row(
        f"[bold]{evaluation['start'][:10]}..{last_day}",
        number(evaluation["auc"]), number(evaluation["ap"]), number(evaluation["cp100"]), "",
    )  # fmt: skip
    console.print(table)
    stages = summary["timing"]["stages"]
    spent = ", ".join(
        f"{name} {seconds:.1f}s"
        for name, seconds in stages.items()
        if name.endswith(("features", "read", "rules", "model", "policy", "wait", "gate", "write"))
    )
    console.print(f"stages: {spent}")
    console.print(f"report: {report / 'report.html'} (summary.json, decisions.parquet)")


def _last_day(end: str) -> str:
    """The last day an exclusive end instant includes (``2018-08-15T00:00Z`` -> 08-14)."""
    from datetime import datetime, timedelta

    moment = datetime.fromisoformat(end.replace("Z", "+00:00")) - timedelta(milliseconds=1)
    return f"{moment:%Y-%m-%d}"
