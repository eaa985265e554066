"""Endless synthetic traffic for ``fraudstream produce``, fast enough to saturate a broker.

Periods are simulated in vectorised chunks (tens of thousands of rows at once) and then
streamed out one dict at a time, each stamped with the clock at the moment it is taken,
so event times track "now" however fast or slow the consumer pulls.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import numpy as np

from models.exceptions import SimulatorError
from models.simulator._config import SimulatorConfig
from models.simulator._history import simulate_period
from models.simulator._legit import DAY_MS
from models.simulator._population import build_population
from models.simulator._render import COLUMNS, Renderer

__all__ = ["Clock", "live_events", "utc_now"]

#: Returns the current time, timezone-aware; tests pass a fake one.
Clock = Callable[[], datetime]

_ROWS_PER_CHUNK = 20_000
_MAX_CHUNK_DAYS = 365
_DEVICES_PER_CHUNK = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
    """Yield transactions forever, with ``label`` and ``pattern``, stamped by ``clock``.

    Everything but ``event_time`` depends only on the config; ``tx_id`` also carries the
    clock's first reading so that a restarted producer never repeats an id (consumers
    dedupe by ``tx_id``). Event times never go backwards, even if the clock does.
    """
    population = build_population(config)
    renderer = Renderer(population)
    rows_per_day = float(population.tx_per_day.sum())
    chunk_days = min(_MAX_CHUNK_DAYS, max(1, math.ceil(_ROWS_PER_CHUNK / rows_per_day)))
    keys = list(COLUMNS)

    last = _as_utc(clock())
    run = (last - _EPOCH) // (datetime.resolution * 1000)
    prefix = f"tx-{config.seed}-r{run:x}-n"
    sent = 0
    for chunk in itertools.count():
        batch = simulate_period(
            population,
            start_ms=config.start_ms + chunk * chunk_days * DAY_MS,
            days=chunk_days,
            fraud_rate=config.fraud_rate,
            rng=np.random.default_rng([config.seed, 2, chunk]),
            first_fraud_device=population.device_count_total + chunk * _DEVICES_PER_CHUNK,
        )
        tx_ids = [f"{prefix}{n}" for n in range(sent, sent + len(batch))]
        sent += len(batch)
        for values in zip(*renderer.python_columns(batch, tx_ids), strict=True):
            event: dict[str, object] = dict(zip(keys, values))  # noqa: B905 - equal by construction
            now = clock()
            if now.tzinfo is not UTC:
                now = _as_utc(now)
            now = now.replace(microsecond=now.microsecond - now.microsecond % 1000)
            if now < last:
                now = last
            last = now
            event["event_time"] = now
            yield event
