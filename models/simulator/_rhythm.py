"""When genuine transactions happen, for any span of time: the live stream's clock.

The history draws a day of its period, then a local hour, which needs whole days. The live
stream needs windows of minutes that start at any instant, with the very same intensity
per user: each user's genuine transactions form a Poisson process whose rate is the user's
transactions per day, times the weight of the UTC weekday (relative to the weekly mean),
times the weight of the local hour at home (wrapped within the UTC day, as in the history).
Every UTC offset is a whole number of half hours, so that rate is constant within each
half hour for everyone sharing an offset, and a window is sampled exactly per offset:
Poisson counts, users in proportion to their rates, times by inverse CDF over the slots.
Work per window grows with the rows drawn, not with the population.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from numpy.typing import NDArray

from models.simulator._geography import CITIES, HOURLY_WEIGHTS, WEEKDAY_WEIGHTS
from models.simulator._legit import DAY_MS
from models.simulator._population import Population

__all__ = ["Rhythm"]

_HOUR_MS = 3_600_000
_SLOT_MS = math.gcd(_HOUR_MS, *(round(city.utc_offset_hours * _HOUR_MS) for city in CITIES))
_SLOTS_PER_DAY = DAY_MS // _SLOT_MS
_WEEKDAY_SHARE = WEEKDAY_WEIGHTS / WEEKDAY_WEIGHTS.mean()


class Rhythm:
    """Samples a population's genuine (user, time) pairs in any window, per UTC offset."""

    __slots__ = ("_cumulative_rates", "_members", "_slot_shift", "rows_per_day")

    def __init__(self, population: Population) -> None:
        distinct, city_group = np.unique(population.city_utc_offset_s * 1000, return_inverse=True)
        group = city_group.astype(np.uint8)[population.home_city]  # few offsets: radix sort
        order = np.argsort(group, kind="stable").astype(np.int64)
        bounds = np.searchsorted(group[order], np.arange(distinct.size + 1))
        inhabited = np.flatnonzero(np.diff(bounds) > 0)
        self._slot_shift = (distinct[inhabited] // _SLOT_MS).astype(np.int64)
        members = [order[a:b] for a, b in itertools.pairwise(bounds.tolist())]
        self._members = [members[g] for g in inhabited.tolist()]
        self._cumulative_rates = [np.cumsum(population.tx_per_day[m]) for m in self._members]
        #: Expected genuine rows per day, averaged over a week.
        self.rows_per_day = float(population.tx_per_day.sum())

    def _densities(self, slots: NDArray[np.int64]) -> NDArray[np.float64]:
        """(offsets, slots): expected transactions per ms of a user doing one a day."""
        weekday = (slots // _SLOTS_PER_DAY + 3) % 7  # 1970-01-01 was a Thursday
        utc_slot = slots % _SLOTS_PER_DAY
        local_slot = (utc_slot[None, :] + self._slot_shift[:, None]) % _SLOTS_PER_DAY
        local_hour = local_slot * _SLOT_MS // _HOUR_MS
        share = _WEEKDAY_SHARE[weekday][None, :] * HOURLY_WEIGHTS[local_hour]
        return np.asarray(share / _HOUR_MS)

    def sample(
        self, start_ms: int, end_ms: int, rng: np.random.Generator
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Users and times (unsorted) of every genuine transaction in [start_ms, end_ms)."""
        slots = np.arange(start_ms // _SLOT_MS, (end_ms - 1) // _SLOT_MS + 1, dtype=np.int64)
        begin = np.maximum(slots * _SLOT_MS, start_ms)
        length = np.minimum((slots + 1) * _SLOT_MS, end_ms) - begin
        mass = self._densities(slots) * length  # per offset and slot, for one tx a day
        users, times = [], []
        for members, rates, slot_mass in zip(
            self._members, self._cumulative_rates, mass, strict=True
        ):
            cumulative_mass = np.cumsum(slot_mass)
            count = int(rng.poisson(rates[-1] * cumulative_mass[-1]))
            who = np.searchsorted(rates, rng.random(count) * rates[-1], side="right")
            slot = np.searchsorted(
                cumulative_mass, rng.random(count) * cumulative_mass[-1], "right"
            )
            slot = np.minimum(slot, slots.size - 1)
            offset = np.floor(rng.random(count) * length[slot]).astype(np.int64)
            users.append(members[np.minimum(who, members.size - 1)])
            times.append(begin[slot] + offset)
        return np.concatenate(users).astype(np.int64), np.concatenate(times).astype(np.int64)
