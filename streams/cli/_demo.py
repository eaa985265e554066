"""``fraudstream demo``: the whole system on this machine, end to end."""

from __future__ import annotations

from typing import Annotated

import typer

from streams.cli._common import friendly_errors

__all__ = ["demo"]


def demo(
    duration: Annotated[
        float, typer.Option(help="Seconds of live traffic; 0 runs until Ctrl-C.", min=0)
    ] = 120.0,
    rate: Annotated[
        float,
        typer.Option(help="Live transactions per second (the population is sized for it).", min=1),
    ] = 50.0,
    keep_servers: Annotated[
        bool, typer.Option(help="Leave the local servers running at the end.")
    ] = False,
) -> None:
    """Start local Kafka and Redis, create topics, simulate history, stream traffic, show it.

    Everything the demo starts it also stops, unless --keep-servers is given; servers that
    were already running before the demo are left running.
    """
    from streams.demo import run_demo
    from streams.settings import get_settings

    with friendly_errors():
        run_demo(get_settings(), duration_s=duration, rate=rate, keep_servers=keep_servers)
