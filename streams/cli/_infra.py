"""``fraudstream infra fetch | up | down | status``: the local Kafka broker and Redis.

Everything heavy (psutil, confluent_kafka, redis) is imported inside the commands so that
``fraudstream --help`` stays instant.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from streams.infra import Progress, ServerStatus

__all__ = ["infra_app"]

infra_app = typer.Typer(
    help="Local single-node Kafka (KRaft) and Redis; external servers are only checked.",
    no_args_is_help=True,
)

_out = Console()
_err = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@contextmanager
def _errors_as_exit() -> Iterator[None]:
    """Turn a deliberate fraudstream error into one readable message and exit code 1."""
    from schemas.exceptions import FraudstreamError

    try:
        yield
    except FraudstreamError as exc:
        # messages carry log lines such as "[QuorumController id=1]": never parse as markup
        _err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        _err.print("interrupted")
        raise typer.Exit(130) from None


@contextmanager
def _spinner(text: str) -> Iterator[Progress]:
    """Show a rich status line on stderr that each slow step can relabel."""
    with _err.status(escape(text)) as status:

        def update(message: str) -> None:
            status.update(escape(message))

        yield update


def _state(status: ServerStatus) -> str:
    if status.running:
        return "[green]running[/]"
    return "[red]unreachable[/]" if status.mode == "external" else "[yellow]stopped[/]"


def _report(statuses: Sequence[ServerStatus], *, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps([status.as_dict() for status in statuses], indent=2))
        return
    table = Table(show_edge=False, box=None, pad_edge=False)
    for column in ("server", "address", "mode", "state", "pid", "version", ""):
        table.add_column(column)
    for status in statuses:
        table.add_row(
            status.name,
            status.address,
            status.mode,
            _state(status),
            "-" if status.pid is None else str(status.pid),
            status.version or "-",
            escape(status.message),
        )
    _out.print(table)


@infra_app.command()
def fetch() -> None:
    """Download the Kafka jars with Maven into the cache, so later starts are fast.

    ``make test`` runs this before pytest so that a first download does not eat into a
    test's timeout; it does nothing when the cache is already complete.
    """
    from streams.infra import fetch_kafka, kafka_libs_complete
    from streams.settings import get_settings

    settings = get_settings()
    with _errors_as_exit():
        if kafka_libs_complete(settings):
            libs = fetch_kafka(settings)
            _out.print(f"Kafka {settings.kafka_version} jars already cached in {libs}")
            return
        with _spinner(f"Fetching Kafka {settings.kafka_version} jars") as progress:
            libs = fetch_kafka(settings, progress)
        _out.print(f"Kafka {settings.kafka_version} jars cached in {libs}")


@infra_app.command()
def up(as_json: JsonOption = False) -> None:
    """Start the local Kafka broker and Redis unless they already run, and wait for them."""
    from streams.infra import infra_up
    from streams.settings import get_settings

    with _errors_as_exit(), _spinner("Starting local servers") as progress:
        statuses = infra_up(get_settings(), progress)
    _report(statuses, as_json=as_json)
    if not all(status.running for status in statuses):
        raise typer.Exit(1)


@infra_app.command()
def down(as_json: JsonOption = False) -> None:
    """Stop the local servers that infra up started (by pid file; external ones stay)."""
    from streams.infra import infra_down
    from streams.settings import get_settings

    with _errors_as_exit(), _spinner("Stopping local servers") as progress:
        statuses = infra_down(get_settings(), progress)
    _report(statuses, as_json=as_json)


@infra_app.command()
def status(as_json: JsonOption = False) -> None:
    """Show both servers: address, whether they answer, pid and version.

    The exit code is 0 either way; scripts read ``running`` from ``--json``.
    """
    from streams.infra import infra_status
    from streams.settings import get_settings

    with _errors_as_exit(), _spinner("Checking local servers"):
        statuses = infra_status(get_settings())
    _report(statuses, as_json=as_json)
