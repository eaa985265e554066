"""``fraudstream decisions tail``: follow the decisions topic."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from streams.cli._common import console, err_console, friendly_errors

__all__ = ["decisions_app"]

decisions_app = typer.Typer(help="Read the decisions topic.", no_args_is_help=True)

_STYLE = {"APPROVE": "green", "REVIEW": "yellow", "BLOCK": "bold red"}


@decisions_app.command("tail")
def tail(
    json_lines: Annotated[bool, typer.Option("--json", help="Print raw JSON lines.")] = False,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest retained decision.")
    ] = False,
    max_messages: Annotated[
        int | None, typer.Option("--max", help="Stop after N decisions.", min=1)
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Stop after S seconds without a new decision.")
    ] = None,
) -> None:
    """Follow decisions as they are made: a readable line each, or JSON lines."""
    from schemas import Decision, SchemaValidationError, decode
    from streams.consuming import read_topic
    from streams.settings import get_settings

    settings = get_settings()
    shown = 0
    with friendly_errors():
        for message in read_topic(
            settings,
            settings.topic_decisions,
            from_beginning=from_beginning,
            max_messages=max_messages,
            idle_timeout_s=timeout,
        ):
            raw = message.value() or b""
            shown += 1
            if json_lines:
                sys.stdout.write(raw.decode("utf-8", "replace") + "\n")
                sys.stdout.flush()
                continue
            try:
                decision = decode(raw, Decision)
            except SchemaValidationError as exc:
                err_console.print(
                    f"[red]unreadable decision at offset {message.offset()}:[/] {exc}"
                )
                continue
            style = _STYLE[decision.decision]
            score = "   -  " if decision.score is None else f"{decision.score:6.3f}"
            rules = ",".join(hit.id for hit in decision.rules_fired) or "-"
            flag = (
                " [magenta]degraded:" + (decision.degraded_cause or "?") + "[/]"
                if decision.degraded
                else ""
            )
            console.print(
                f"{decision.event_time:%H:%M:%S} [{style}]{decision.decision:<7}[/] {score} "
                f"{decision.tx_id:<20} user={decision.user_id:<10} "
                f"{decision.latency_ms:6.1f}ms rules={rules} "
                f"{' '.join(decision.reasons[:3])}{flag}",
                highlight=False,
            )
    if not json_lines:
        err_console.print(f"{shown} decisions")
