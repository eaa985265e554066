"""``fraudstream topics``: create the topics of the architecture page."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from streams.cli._common import console, friendly_errors

__all__ = ["topics_app"]

topics_app = typer.Typer(help="Create and inspect the Kafka topics.", no_args_is_help=True)


@topics_app.command("create")
def create(
    partitions: Annotated[
        int | None,
        typer.Option(help="Partitions per keyed topic (default: FRAUD_PARTITIONS, 6).", min=1),
    ] = None,
) -> None:
    """Create transactions, decisions, labels, the DLQ and model-updates; safe to re-run."""
    from streams.settings import get_settings
    from streams.topics import create_topics, topic_specs

    settings = get_settings()
    with friendly_errors():
        outcome = create_topics(settings, partitions)
    table = Table("topic", "partitions", "config", "status", title=settings.bootstrap_servers)
    for spec in topic_specs(settings, partitions):
        config = ", ".join(f"{k}={v}" for k, v in spec.config.items())
        table.add_row(spec.name, str(spec.partitions), config, outcome.get(spec.name, "?"))
    console.print(table)
