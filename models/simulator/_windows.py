"""The live timeline: consecutive windows from a start instant, each simulated in one go.

A window is sized to hold about twenty thousand rows, whatever the population: minutes
for millions of users, days for a few hundred. That keeps every step vectorised while
the first window, and so the first event, is ready in a fraction of a second.

Within a window, genuine rows come from :class:`~models.simulator._rhythm.Rhythm` and are
dressed exactly as in the history; trips abroad are drawn per thirty-day period (as in a
default history) and windows never straddle two periods. Fraud episodes are planted per
window with an unbounded :class:`~models.simulator._patterns.FraudContext`: they start
inside the window and may run on after it (a breach lasts days, a spree follows a theft
by hours), so rows past the window's end are carried over and merged, in time order, into
the windows they fall in. Every row is at or after its window's start, so the stream is
in event-time order.

A fresh stream warms up: it has no past, so in its first minutes fraud is mostly card
testing, while breaches (spread over days) and the sprees that follow stolen cards by
hours reach their share of the traffic over the first days.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from models.simulator._columns import TxColumns
from models.simulator._history import plant_fraud
from models.simulator._legit import DAY_MS, Trips, draw_trips, dress_transactions
from models.simulator._patterns import FraudContext
from models.simulator._population import Population
from models.simulator._rhythm import Rhythm

__all__ = ["live_batches"]

_TARGET_ROWS = 20_000
_MIN_WINDOW_MS = 60_000
_MAX_WINDOW_MS = 7 * DAY_MS
_TRIP_PERIOD_DAYS = 30


def _window_ms(rhythm: Rhythm) -> int:
    wanted = round(_TARGET_ROWS * DAY_MS / max(rhythm.rows_per_day, 1e-9))
    return min(max(wanted, _MIN_WINDOW_MS), _MAX_WINDOW_MS)


def live_batches(
    population: Population, *, seed: int, start_ms: int, fraud_rate: float
) -> Iterator[TxColumns]:
    """Yield every transaction from ``start_ms`` on, window by window, sorted by time.

    The same population, seed and start always yield the same rows. A batch may be empty
    (a quiet night in a small world).
    """
    rhythm = Rhythm(population)
    window_ms = _window_ms(rhythm)
    first_day = start_ms // DAY_MS
    next_device = population.device_count_total
    carried = TxColumns.empty()
    trips: Trips | None = None
    trips_period = -1
    window_start = start_ms
    for window in itertools.count():
        period = (window_start // DAY_MS - first_day) // _TRIP_PERIOD_DAYS
        period_start_day = first_day + period * _TRIP_PERIOD_DAYS
        window_end = min(window_start + window_ms, (period_start_day + _TRIP_PERIOD_DAYS) * DAY_MS)
        if trips is None or period != trips_period:
            trips_rng = np.random.default_rng([seed, 3, period])
            trips, trips_period = draw_trips(population, _TRIP_PERIOD_DAYS, trips_rng), period

        rng = np.random.default_rng([seed, 2, window])
        user, time_ms = rhythm.sample(window_start, window_end, rng)
        day = time_ms // DAY_MS - period_start_day
        legit = dress_transactions(
            population, user, time_ms, day, rng.random(user.size), trips, rng
        )
        context = FraudContext(
            population=population,
            legit=legit,
            rng=rng,
            start_ms=window_start,
            end_ms=window_end,
            next_device=next_device,
            bounded=False,
        )
        fraud = plant_fraud(context, fraud_rate)
        next_device = context.next_device

        rows = TxColumns.concat([carried, legit, *fraud]).sorted_by_time()
        cut = int(np.searchsorted(rows.time_ms, window_end))
        carried = rows.take(np.arange(cut, len(rows), dtype=np.int64))
        yield rows.take(np.arange(cut, dtype=np.int64))
        window_start = window_end
