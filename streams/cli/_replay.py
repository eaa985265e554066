"""``fraudstream replay``: a history into Kafka at its own pace, to backtest the live path."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from streams.cli._common import console, fail, friendly_errors

if TYPE_CHECKING:
    import pandas as pd

    from streams.producing import RecordProducer
    from streams.replay import Schedule

__all__ = ["replay"]

#: Rows turned into payloads at a time: bounded memory for files of millions of rows.
_CHUNK_ROWS = 50_000
#: How often the progress display is refreshed with the counters, in seconds.
_REFRESH_S = 0.2


def replay(
    data: Annotated[Path, typer.Argument(help="Parquet or CSV history.", show_default=False)],
    speed: Annotated[
        str,
        typer.Option(
            help="60x: an hour of history a minute; 1x: real time; 1.5x; max: as fast as "
            "the broker takes it.",
            show_default=False,
        ),
    ],
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="field=COLUMN for files with other column names."),
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="Only events at or after this date/time (UTC).")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Only events before this date/time (UTC, exclusive).")
    ] = None,
    restamp: Annotated[
        bool,
        typer.Option(
            "--restamp",
            help="Send event times shifted so the first event is now and the others keep "
            "their offsets divided by the speed (default: the file's own times).",
        ),
    ] = False,
    count: Annotated[int | None, typer.Option(help="Stop after this many events.")] = None,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds of wall-clock time.")
    ] = None,
    topic: Annotated[str | None, typer.Option(help="Topic (default: transactions).")] = None,
) -> None:
    """Send a history to Kafka in event-time order, keeping its timing at --speed.

    Records are keyed by user_id (idempotent, acks=all, murmur2_random) like live
    traffic. Event times are the file's own unless --restamp is given. Ends with a
    summary; exits 1 if any record was not delivered, 130 on Ctrl-C.
    """
    from streams.replay import ReplayError, Schedule, parse_moment, parse_speed

    try:
        pace = parse_speed(speed)
        since = None if start is None else parse_moment(start, "--start")
        until = None if end is None else parse_moment(end, "--end")
    except ReplayError as exc:
        raise fail(str(exc), code=2) from None
    if count is not None and count < 1:
        raise fail(f"--count must be at least 1, got {count}", code=2)
    if duration is not None and duration <= 0:
        raise fail(f"--duration must be positive, got {duration:g}", code=2)

    from schemas.history import parse_mapping, read_history
    from streams.producing import RecordProducer
    from streams.settings import get_settings

    with friendly_errors():
        frame = _selected(read_history(data, parse_mapping(mapping or [])), since, until)
        event_ms = frame["event_time"].to_numpy(dtype="datetime64[ms]").astype("int64")
        schedule = Schedule.of(event_ms, pace)
        if count is not None:
            schedule = schedule.head(count)
        frame = frame.iloc[schedule.order].reset_index(drop=True)
        settings = get_settings()
        producer = RecordProducer(settings, topic or settings.topic_transactions)
        console.print(_plan(schedule, producer.topic, restamp=restamp))
        outcome = _send(schedule, frame, producer, restamp=restamp, duration=duration)
        undelivered = producer.flush()
        outcome.finish()
    stats = producer.stats
    console.print(outcome.summary(producer, undelivered))
    for error in stats.errors:
        console.print(f"  [red]{error}[/]")
    if stats.failed or undelivered:
        raise typer.Exit(1)
    if outcome.interrupted:
        raise typer.Exit(130)


def _selected(frame: pd.DataFrame, since: datetime | None, until: datetime | None) -> pd.DataFrame:
    """Rows with ``since <= event_time < until``; refuses an empty selection."""
    from streams.replay import ReplayError

    if frame.empty:
        raise ReplayError("nothing to replay: the file has no rows")
    keep = frame["event_time"].notna()
    if since is not None:
        keep &= frame["event_time"] >= since
    if until is not None:
        keep &= frame["event_time"] < until
    if not keep.any():
        first, last = frame["event_time"].min(), frame["event_time"].max()
        raise ReplayError(
            f"nothing to replay between {since or 'the start'} and {until or 'the end'}: "
            f"the file covers {first} to {last}"
        )
    return frame[keep]


def _plan(schedule: Schedule, topic: str, *, restamp: bool) -> str:
    from streams.replay import describe_span

    pace = (
        "as fast as the broker takes it"
        if schedule.speed.is_max
        else f"at {schedule.speed} (about {describe_span(schedule.wall_s)})"
    )
    stamps = "event times restamped from now" if restamp else "event times as in the file"
    return (
        f"replaying [bold]{len(schedule):,}[/] events, {_moment(schedule.first_ms)} to "
        f"{_moment(schedule.last_ms)} ({describe_span(schedule.span_s)} of history), "
        f"into [cyan]{topic}[/] {pace}; {stamps}"
    )


def _moment(epoch_ms: int, with_time: bool = True) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def _payloads(frame: pd.DataFrame) -> Iterator[tuple[bytes, bytes]]:
    """Kafka records of ``frame`` in order, converted a chunk at a time."""
    from schemas.history import transaction_payloads

    for begin in range(0, len(frame), _CHUNK_ROWS):
        yield from transaction_payloads(frame.iloc[begin : begin + _CHUNK_ROWS])


class _Outcome:
    """What a replay did: counts, history covered, wall time, how far behind it fell."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.started = time.perf_counter()
        self.started_ms = time.time_ns() // 1_000_000
        self.sent = 0
        self.last_ms = schedule.first_ms
        self.behind_s = 0.0
        self.interrupted = False
        self.stopped_by: str | None = None
        self.wall_s = 0.0

    def finish(self) -> None:
        """Stop the wall clock (after the last delivery)."""
        self.wall_s = time.perf_counter() - self.started

    def summary(self, producer: RecordProducer, undelivered: int) -> str:
        """The closing line: sent, delivered, failed, history span, wall time, speed."""
        from streams.replay import describe_span

        stats = producer.stats
        span_s = (self.last_ms - self.schedule.first_ms) / 1000 if self.sent else 0.0
        effective = span_s / self.wall_s if self.wall_s > 0 else 0.0
        head = "[yellow]interrupted:[/] " if self.interrupted else ""
        if self.stopped_by:
            head = f"[yellow]stopped by {self.stopped_by}:[/] "
        behind = (
            "" if self.schedule.speed.is_max else f", at most {self.behind_s:.2f}s behind schedule"
        )
        history = (
            f"{_moment(self.schedule.first_ms)} to {_moment(self.last_ms)}" if self.sent else "none"
        )
        return (
            f"{head}sent [bold]{self.sent:,}[/] to [cyan]{producer.topic}[/]: "
            f"delivered [green]{stats.delivered:,}[/], failed [red]{stats.failed:,}[/]"
            + (f", undelivered {undelivered:,}" if undelivered else "")
            + f"; history {history} ({describe_span(span_s)}) in "
            f"{describe_span(self.wall_s)} wall time: {effective:,.0f}x effective "
            f"(asked {self.schedule.speed}){behind}, "
            f"{self.sent / max(self.wall_s, 1e-9):,.0f} ev/s"
        )


def _send(
    schedule: Schedule,
    frame: pd.DataFrame,
    producer: RecordProducer,
    *,
    restamp: bool,
    duration: float | None,
) -> _Outcome:
    """The paced send loop with its progress bar; Ctrl-C ends it with what was sent."""
    import orjson
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from streams.replay import paced

    payloads = _payloads(frame)
    first = next(payloads)  # the first chunk is converted before the clock starts
    dues = schedule.due_s()
    end_day = _moment(schedule.last_ms, with_time=False)
    progress = Progress(
        TextColumn("[bold]replaying"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn("{task.fields[eps]:>9,.0f} ev/s"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[clock]}"),
        console=console,
        transient=False,
    )
    outcome = _Outcome(schedule)
    deadline = None if duration is None else outcome.started + duration
    refreshed = outcome.started

    def refresh(now: float) -> None:
        nonlocal refreshed
        refreshed = now
        progress.update(
            task,
            completed=outcome.sent,
            eps=outcome.sent / max(now - outcome.started, 1e-9),
            clock=f"{_moment(outcome.last_ms)} of {end_day}",
        )

    def idle() -> bool:
        now = time.perf_counter()
        if now - refreshed >= _REFRESH_S:
            refresh(now)
        return deadline is not None and now >= deadline

    records = itertools.chain([first], payloads)
    with progress:
        task = progress.add_task(
            "replay",
            total=len(schedule),
            eps=0.0,
            clock=f"{_moment(schedule.first_ms)} of {end_day}",
        )
        try:
            for position in paced(schedule, start=outcome.started, idle=idle):
                now = time.perf_counter()
                if deadline is not None and now >= deadline:
                    break
                key, value = next(records)
                if restamp:
                    payload = orjson.loads(value)
                    payload["event_time"] = schedule.stamp_ms(
                        position,
                        start_ms=outcome.started_ms,
                        sent_ms=time.time_ns() // 1_000_000,
                    )
                    value = orjson.dumps(payload)
                producer.send(key, value)
                outcome.sent += 1
                outcome.last_ms = int(schedule.event_ms[position])
                outcome.behind_s = max(outcome.behind_s, now - outcome.started - dues[position])
                if now - refreshed >= _REFRESH_S:
                    refresh(now)
        except KeyboardInterrupt:
            outcome.interrupted = True
        if deadline is not None and outcome.sent < len(schedule) and not outcome.interrupted:
            outcome.stopped_by = "--duration"
        refresh(time.perf_counter())
    return outcome
