"""``fraudstream label``: send analysts' verdicts to the ``labels`` topic."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from streams.cli._common import console, err_console, fail, friendly_errors

if TYPE_CHECKING:
    from streams.settings import Settings

__all__ = ["label"]


def label(
    tx_id: Annotated[str | None, typer.Argument(help="The decided transaction.")] = None,
    verdict: Annotated[str | None, typer.Argument(help="fraud or legit.")] = None,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="CSV, JSON lines or Parquet with tx_id, user_id, label "
            "[, source, analyst_id, note, labeled_at].",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option(help="The transaction's user_id; default: looked up in the decision cache."),
    ] = None,
    source: Annotated[str, typer.Option(help="analyst, chargeback or customer.")] = "analyst",
    analyst: Annotated[str | None, typer.Option(help="Who gives the verdict.")] = None,
    note: Annotated[str | None, typer.Option(help="A short note kept with the label.")] = None,
) -> None:
    """Label a decided transaction fraud or legit, or send a file of labels.

    Labels go to `labels` keyed by user_id; the feedback service joins each with its
    decision, teaches the online model, updates merchant risk and keeps it for the next
    retrain. A label sent before its decision exists waits for it; sending the same
    label twice is harmless; a changed verdict corrects the earlier one.
    """
    from streams.labelling import lookup_user, make_label, send_labels
    from streams.redis_store import RedisStore
    from streams.settings import get_settings

    settings = get_settings()
    with friendly_errors():
        if from_file is not None:
            if tx_id is not None:
                raise fail("give either TX_ID VERDICT or --from FILE, not both")
            _send_file(settings, from_file, source, analyst)
            return
        if tx_id is None or verdict is None:
            raise fail("give TX_ID and VERDICT (fraud or legit), or --from FILE")
        user_id = user
        if user_id is None:
            store = RedisStore(settings.redis_dsn, timeout_s=2.0)
            user_id = lookup_user(store.client, tx_id)
            if user_id is None:
                raise fail(
                    f"transaction {tx_id} is not in the decision cache (kept "
                    f"{settings.decision_ttl_s} s); pass its user with --user"
                )
        item = make_label(tx_id, user_id, verdict, source=source, analyst_id=analyst, note=note)
        report = send_labels(settings, iter([(1, item)]))
        console.print(f"sent: {item.tx_id} is {item.label} ({report.sent} label)", highlight=False)


def _send_file(settings: Settings, path: Path, source: str, analyst: str | None) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from streams.labelling import label_rows, send_labels

    with Progress(
        TextColumn("labels"), BarColumn(), MofNCompleteColumn(), console=err_console
    ) as progress:
        task = progress.add_task("labels", total=None)
        report = send_labels(
            settings,
            label_rows(path, {"source": source, "analyst_id": analyst}),
            on_row=lambda done: progress.update(task, completed=done),
        )
    for line, reason in report.refused[:20]:
        err_console.print(f"[yellow]line {line}:[/] {reason}", highlight=False, soft_wrap=True)
    if len(report.refused) > 20:
        err_console.print(f"... and {len(report.refused) - 20} more refused rows")
    console.print(
        f"sent {report.sent} of {report.rows} labels; refused {len(report.refused)}",
        highlight=False,
    )
    if report.refused:
        raise typer.Exit(1)
