"""``fraudstream produce``: live synthetic traffic at a rate, or a historical file."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from streams.cli._common import console, fail, friendly_errors

__all__ = ["produce"]


def _synthetic_payloads(
    seed: int, users: int | None, merchants: int | None, rate: float, truth: Path | None = None
) -> Iterator[tuple[bytes, bytes]]:
    """Live simulated records, their event times on the simulated timeline (never squeezed).

    Without --users the population is sized so that its natural rate is --rate, which keeps
    every user as active as in the history the model learnt from. Events are held back
    until at most a few minutes before their event time, so a population too small for
    --rate never sends events the scorer would refuse as coming from the future: the send
    rate then settles at the population's own.
    """
    import orjson

    from models.simulator import (
        SimulatorConfig,
        held_to_clock,
        live_events,
        merchants_for_users,
        natural_rate,
        population_for_rate,
    )
    from streams.settings import get_settings

    if users is None:
        users = population_for_rate(rate if rate > 0 else math.inf)[0]
    if merchants is None:
        merchants = merchants_for_users(users)
    config = SimulatorConfig(users=users, merchants=merchants, seed=seed)
    tolerance = timedelta(milliseconds=get_settings().future_tolerance_ms)
    lead = min(_MAX_LEAD, tolerance / 2)
    natural = natural_rate(config)
    console.print(
        f"simulating {users:,} users and {merchants:,} merchants in real time: about "
        f"{natural:,.1f} events/s on average (busier evenings, quieter nights)"
    )
    speed = 1.0 if 0 < rate <= natural * 1.05 else (rate / natural if rate > 0 else math.inf)
    if speed > 1:
        asked = "as fast as possible" if math.isinf(speed) else f"--rate {rate:,.0f}"
        console.print(
            f"[yellow]{asked} is more than they make: simulated time runs "
            + ("at the send clock" if math.isinf(speed) else f"{speed:,.1f}x faster")
            + " (per-user gaps shrink, so velocity features run hot)[/]"
        )
    events = held_to_clock(_time_compressed(live_events(config), speed), max_lead=lead)
    with contextlib.ExitStack() as stack:
        truth_file = None if truth is None else stack.enter_context(truth.open("ab"))
        for event in events:
            payload = {k: v for k, v in event.items() if v is not None and k not in _NOT_SENT}
            moment = payload["event_time"]
            if isinstance(moment, datetime):
                payload["event_time"] = int(moment.timestamp() * 1000)
            if truth_file is not None:
                fact = {k: event[k] for k in ("tx_id", "user_id", "label", "pattern")}
                truth_file.write(orjson.dumps(fact, option=orjson.OPT_APPEND_NEWLINE))
                truth_file.flush()
            yield str(payload["user_id"]).encode(), orjson.dumps(payload)


def _time_compressed(
    events: Iterator[dict[str, object]], speed: float
) -> Iterator[dict[str, object]]:
    """Event times squeezed towards the first one by ``speed`` (inf: stamped with now)."""
    if speed == 1:
        yield from events
        return
    origin: datetime | None = None
    for event in events:
        moment = event["event_time"]
        assert isinstance(moment, datetime)  # noqa: S101 - live_events' contract
        if math.isinf(speed):
            event["event_time"] = datetime.now(tz=UTC)
        else:
            origin = origin or moment
            event["event_time"] = origin + (moment - origin) / speed
        yield event


#: How far ahead of the clock an event may be sent: well within the scorer's tolerance.
_MAX_LEAD = timedelta(seconds=1)
_NOT_SENT = frozenset({"label", "pattern"})


def produce(
    from_file: Annotated[
        Path | None,
        typer.Option("--from", help="Send this Parquet/CSV file instead of synthetic traffic."),
    ] = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="field=COLUMN for files with other column names."),
    ] = None,
    rate: Annotated[
        float, typer.Option(help="Synthetic traffic: events per second; 0 = as fast as possible.")
    ] = 1000.0,
    count: Annotated[int | None, typer.Option(help="Stop after this many events.")] = None,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (0 = run until Ctrl-C).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic population.")] = 7,
    users: Annotated[
        int | None,
        typer.Option(help="Synthetic users (default: as many as --rate needs, up to 2,000,000)."),
    ] = None,
    merchants: Annotated[
        int | None, typer.Option(help="Synthetic merchants (default: a quarter of the users).")
    ] = None,
    topic: Annotated[str | None, typer.Option(help="Topic (default: transactions).")] = None,
    truth: Annotated[
        Path | None,
        typer.Option(
            help="Synthetic traffic: append each event's true label and pattern to this "
            "JSON-lines file (what analysts and chargebacks reveal later; the demo's analyst).",
        ),
    ] = None,
) -> None:
    """Send transactions keyed by user_id (idempotent, acks=all, murmur2_random).

    Without --from, sends synthetic live traffic with fraud at --rate; give --count or
    --duration to stop (default: 10 seconds). With --from, sends the file in event-time
    order as fast as the broker takes it.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from schemas.history import parse_mapping, read_history, transaction_payloads
    from streams.producing import Pacer, RecordProducer
    from streams.settings import get_settings

    settings = get_settings()
    with friendly_errors():
        if from_file is not None:
            frame = read_history(from_file, parse_mapping(mapping or []))
            total: int | None = len(frame) if count is None else min(count, len(frame))
            payloads = transaction_payloads(frame)
            rate = 0.0
        else:
            if mapping:
                raise fail("--map only applies with --from FILE")
            if count is None and duration is None:
                duration = 10.0
            total = count
            payloads = _synthetic_payloads(seed, users, merchants, rate, truth)
        producer = RecordProducer(settings, topic or settings.topic_transactions)
        deadline = time.monotonic() + duration if duration else None
        # Headroom over --rate: the simulated day has busy evenings and quiet nights, and
        # event times (held to the clock) already set the pace of synthetic traffic.
        pacer = Pacer(rate * (2.5 if from_file is None else 1)) if rate > 0 else None
        sent = 0
        progress = Progress(
            TextColumn("[bold]producing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[eps]:>9,.0f} ev/s"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        started = time.perf_counter()
        with progress:
            task = progress.add_task("produce", total=total, eps=0.0)
            for key, value in payloads:
                if (total is not None and sent >= total) or (
                    deadline is not None and time.monotonic() >= deadline
                ):
                    break
                if pacer is not None:
                    while pacer.due() == 0:
                        pacer.wait()
                    pacer.sent += 1
                producer.send(key, value)
                sent += 1
                if sent % 2000 == 0:
                    elapsed = time.perf_counter() - started
                    progress.update(task, completed=sent, eps=sent / max(elapsed, 1e-9))
            progress.update(task, completed=sent)
        undelivered = producer.flush()
        elapsed = time.perf_counter() - started
    stats = producer.stats
    console.print(
        f"sent [bold]{sent:,}[/] to [cyan]{producer.topic}[/] in {elapsed:.1f}s "
        f"({sent / max(elapsed, 1e-9):,.0f} ev/s): "
        f"delivered [green]{stats.delivered:,}[/], failed [red]{stats.failed:,}[/]"
        + (f", undelivered {undelivered:,}" if undelivered else "")
    )
    for error in stats.errors:
        console.print(f"  [red]{error}[/]")
    if stats.failed or undelivered:
        raise typer.Exit(1)
