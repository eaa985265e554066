"""``fraudstream feedback`` and ``fraudstream retrain``: the feedback loop's two commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streams.cli._common import console, fail, friendly_errors

__all__ = ["feedback", "retrain"]


def feedback() -> None:
    """Run the feedback service (a Faust app) until Ctrl-C.

    Joins every label on `labels` with its decision from `decisions`, then: teaches the
    online (river) model and publishes it on `model-updates` every
    FRAUD_ONLINE_PUBLISH_EVERY labels or FRAUD_ONLINE_PUBLISH_INTERVAL_S seconds; keeps
    each merchant's known-label fraud share in Redis for the scorers; appends the joined
    example to the offline store (FRAUD_OFFLINE_STORE_DIR) and retrains on the schedule
    FRAUD_RETRAIN_CRON (default weekly, Monday 03:00 UTC). State lives in RocksDB with
    changelog topics plus a checkpoint under FRAUD_STATE_DIR/feedback; a restart resumes
    without losing or repeating a label. Metrics on FRAUD_FEEDBACK_METRICS_PORT.

    Also serves the analyst review console on http://127.0.0.1:8088/
    (FRAUD_CONSOLE_HOST/PORT; analysts from FRAUD_CONSOLE_ANALYSTS, see `fraudstream
    console hash-password`; FRAUD_CONSOLE_ENABLED=false turns it off).
    """
    from streams.feedback import FeedbackService
    from streams.logs import configure_logging
    from streams.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level, service="feedback")
    with friendly_errors():
        service = FeedbackService(settings)
    service.run()


def retrain(
    history: Annotated[
        Path | None,
        typer.Option(
            help="Labelled history to train on besides the offline store "
            "(default FRAUD_RETRAIN_HISTORY).",
            exists=True,
            dir_okay=True,
        ),
    ] = None,
    label_delay: Annotated[
        str | None,
        typer.Option(help="Time until a history label is known (7d, 12h...); default 7d."),
    ] = None,
) -> None:
    """Retrain now on the offline store (plus FRAUD_RETRAIN_HISTORY), gate, promote, publish.

    The same job the feedback service runs on its schedule: the candidate is trained
    and judged against the champion; it becomes champion or challenger and running
    scorers swap it in from `model-updates`. A failed run changes nothing.
    """
    from models.pit import parse_duration
    from streams.feedback import run_retrain
    from streams.logs import configure_logging
    from streams.settings import get_settings

    settings = get_settings()
    configure_logging("WARNING", service="retrain")
    with friendly_errors():
        overrides: dict[str, object] = {}
        if history is not None:
            overrides["retrain_history"] = history
        if label_delay is not None:
            overrides["retrain_label_delay"] = parse_duration(label_delay)
        settings = settings.model_copy(update=overrides)
        outcome = run_retrain(
            settings, "command", on_stage=lambda stage: console.print(f"[dim]{stage}[/]")
        )
    if outcome is None:
        raise fail("retrain failed; nothing changed (the log line above says why)")
    console.print(
        f"{outcome.manifest.version}: {outcome.gate.verdict} ({outcome.gate.reason})",
        highlight=False,
    )
    if outcome.publish_error:
        console.print(f"[yellow]not announced:[/] {outcome.publish_error}", soft_wrap=True)
