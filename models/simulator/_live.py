"""Endless live traffic for ``fraudstream produce``, on the simulated timeline at 1x real time.

Why time-faithful: the scorer's velocity features (counts per minute, hour and day,
distinct merchants, travel speed) and its rules were fitted on the history, where a user
pays about four times a day. Stamping each event with the time it happens to be pulled
squeezes a small population's whole day into seconds, and then half the live traffic
looks like card testing or impossible travel. So:

- **Event times are simulated, never re-stamped.** The stream starts at the clock's
  reading when the first event is asked for (``now``); an event's ``event_time`` is
  ``now`` plus its offset on the simulated timeline, which follows the history's rhythm
  per user (transactions per day, the daily and weekly cycle, trips, fraud bursts). A
  consumer pulling faster than real time gets events ahead of the clock, a slow one gets
  them late: neither changes the gaps between one user's events.
- **The generator never waits** and reads the clock once, so tests and benchmarks can
  pull it at any speed. Pacing is the sender's business: :func:`held_to_clock` holds each
  event until at most ``max_lead`` before its time (``produce`` uses it so that no event
  reaches the scorer further in the future than it accepts), and the sender's own pacer
  caps the send rate.
- **The population sets the rate.** N users make about N × 4 / 86,400 events per second
  on average (see :func:`~models.simulator._sizing.natural_rate` and
  :func:`~models.simulator._sizing.population_for_rate`), following the simulated day:
  about a quarter of that at night, up to two and a half times on busy evenings. When the
  send rate matches the natural rate, send time and event time stay close; a population
  too small for the send rate makes events run ahead of the clock (until held), one too
  large, or a busy evening under a rate cap, makes them late.
- **Windows of about 20,000 rows** are simulated at a time (see
  :mod:`models.simulator._windows`): minutes for millions of users. Only the population is
  built up front, so the first event of 500,000 users is ready in about a second.

The same seed and the same first clock reading always give the same events; ``tx_id``
carries that reading, so a restarted producer never repeats an id (consumers dedupe by
``tx_id``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from models.exceptions import SimulatorError
from models.simulator._config import SimulatorConfig
from models.simulator._population import build_population
from models.simulator._render import COLUMNS, Renderer
from models.simulator._windows import live_batches

__all__ = ["Clock", "held_to_clock", "live_events", "utc_now"]

#: Returns the current time, timezone-aware; tests pass a fake one.
Clock = Callable[[], datetime]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_EVENT_TIME = COLUMNS.index("event_time")


def utc_now() -> datetime:
    """Read the wall clock in UTC: the live stream's default clock."""
    return datetime.now(UTC)


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is UTC:
        return moment
    if moment.tzinfo is None:
        raise SimulatorError("the clock must return timezone-aware datetimes")
    return moment.astimezone(UTC)


def live_events(config: SimulatorConfig, clock: Clock = utc_now) -> Iterator[dict[str, object]]:
    """Yield transactions forever, with ``label`` and ``pattern``, on the simulated timeline.

    ``clock`` is read once, when the first event is asked for, after the population is
    built: that reading is the stream's start. Event times never go backwards. Nothing
    but ``event_time`` and ``tx_id`` depends on the clock.
    """
    population = build_population(config)
    renderer = Renderer(population)
    keys = list(COLUMNS)
    start_ms = (_as_utc(clock()) - _EPOCH) // _ONE_MS
    prefix = f"tx-{config.seed}-r{start_ms:x}-n"
    sent = 0
    batches = live_batches(
        population, seed=config.seed, start_ms=start_ms, fraud_rate=config.fraud_rate
    )
    for batch in batches:
        tx_ids = [f"{prefix}{n}" for n in range(sent, sent + len(batch))]
        sent += len(batch)
        columns = renderer.python_columns(batch, tx_ids)
        columns[_EVENT_TIME] = [_EPOCH + ms * _ONE_MS for ms in batch.time_ms.tolist()]
        for values in zip(*columns, strict=True):
            yield dict(zip(keys, values))  # noqa: B905 - equal by construction


def held_to_clock(
    events: Iterator[dict[str, object]],
    *,
    max_lead: timedelta,
    clock: Clock = utc_now,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[dict[str, object]]:
    """Pass events on, holding each until ``clock`` is at most ``max_lead`` before its time.

    For senders: a stream sized below the requested rate would otherwise race ahead of
    the clock, and a scorer refuses events too far in its future. Events are never
    re-stamped; a late event passes at once.
    """
    now = _as_utc(clock())
    for event in events:
        moment = event["event_time"]
        if not isinstance(moment, datetime):
            raise SimulatorError(f"event_time must be a datetime, got {type(moment).__name__}")
        due = moment - max_lead
        while due > now:
            now = _as_utc(clock())
            if due > now:
                sleep((due - now).total_seconds())
        yield event
