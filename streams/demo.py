"""The end-to-end demo: every part of the system on local servers, started and stopped here.

Each stage is a separate, visible step so that a newcomer can follow the data: servers,
topics, a simulated history, live traffic into ``transactions``, and what arrives.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
from rich.rule import Rule

from schemas import SchemaValidationError, decode_transaction
from streams.cli._common import console
from streams.consuming import read_topic
from streams.infra import infra_down, infra_status, infra_up
from streams.settings import Settings
from streams.topics import create_topics

__all__ = ["run_demo"]


def _fraudstream() -> str:
    return str(Path(sys.executable).with_name("fraudstream"))


@contextlib.contextmanager
def _local_servers(settings: Settings, keep: bool) -> Iterator[None]:
    """Start what is not running; on exit stop only what this demo started."""
    before = {status.name: status.running for status in infra_status(settings)}
    for status in infra_up(settings, on_progress=lambda msg: console.print(f"  {msg}")):
        console.print(f"  [green]✔[/] {status.name} at {status.address} ({status.version})")
    try:
        yield
    finally:
        if keep or all(before.values()):
            console.print("servers left running (`fraudstream infra down` stops them)")
        elif not any(before.values()):
            infra_down(settings)
            console.print("servers stopped")
        else:
            console.print("servers were partly running before the demo; left running")


def run_demo(settings: Settings, *, duration_s: float, rate: float, keep_servers: bool) -> None:
    """Run the demo; ``duration_s == 0`` streams until Ctrl-C."""
    state = settings.state_dir / "demo"
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    console.print(Rule("1. local Kafka and Redis"))
    with _local_servers(settings, keep_servers):
        console.print(Rule("2. topics"))
        for name, outcome in create_topics(settings).items():
            console.print(f"  {name}: {outcome}")

        console.print(Rule("3. a simulated, labelled history"))
        history = state / "history.parquet"
        subprocess.run(
            [_fraudstream(), "simulate", "--users", "1000", "--merchants", "300", "--days",
             "14", "--out", str(history)],
            check=True,
        )  # fmt: skip

        console.print(Rule(f"4. live traffic at {rate:.0f}/s into {settings.topic_transactions}"))
        producer = subprocess.Popen(
            [_fraudstream(), "produce", "--rate", str(rate), "--duration", str(duration_s)],
            stdout=subprocess.DEVNULL,
        )
        received = _tail_transactions(settings, producer)
        producer.wait(timeout=60)
        summary = {"produced_seen": received, "duration_s": duration_s, "rate": rate}
        (settings.state_dir / "demo-summary.json").write_bytes(orjson.dumps(summary))
        console.print(Rule("summary"))
        console.print(f"  transactions seen on the topic: {received:,}")


def _tail_transactions(settings: Settings, producer: subprocess.Popen[bytes]) -> int:
    """Print one line per 100 transactions until the topic is quiet for 10 seconds."""
    seen = 0
    try:
        for message in read_topic(settings, settings.topic_transactions, idle_timeout_s=10):
            seen += 1
            if seen % 100 == 1:
                try:
                    tx = decode_transaction(message.value() or b"")
                except SchemaValidationError as exc:
                    console.print(f"  [red]bad record[/] {exc.reason}")
                    continue
                console.print(
                    f"  #{seen:>6,} p{message.partition()} {tx.event_time:%H:%M:%S} "
                    f"user={tx.user_id:<8} merchant={tx.merchant_id:<7} "
                    f"{tx.amount:>9} {tx.currency} {tx.channel or '-':<4} {tx.country or '--'}",
                    highlight=False,
                )
    except KeyboardInterrupt:
        producer.terminate()
    return seen
