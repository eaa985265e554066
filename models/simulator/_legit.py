"""Genuine card activity: each user's daily and weekly rhythm, favourite shops and trips.

Everything is drawn for all transactions at once with numpy, so a month of a few thousand
users takes well under a second. Legitimate travel is included on purpose: a detector
that flags every foreign transaction would look good on data without it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from models.simulator._columns import NO_DEVICE, TxColumns
from models.simulator._geography import (
    ATM,
    COUNTRY_EUR_RATE,
    ECOM,
    HOURLY_WEIGHTS,
    MCCS,
    POS,
    WEEKDAY_WEIGHTS,
)
from models.simulator._population import FAVOURITE_ECOM, FAVOURITE_POS, Population

__all__ = [
    "DAY_MS",
    "Trips",
    "draw_trips",
    "dress_transactions",
    "euros_to_cents",
    "legit_transactions",
]

DAY_MS = 86_400_000
_FAVOURITE_SHARE = 0.65
_TRIP_DAYS_MIN, _TRIP_DAYS_MAX = 2, 7
_TRIPS_PER_USER_PER_DAY = 1 / 200
_AMOUNT_FACTOR = np.array([mcc.amount_factor for mcc in MCCS])


def euros_to_cents(
    euros: NDArray[np.float64], merchant: NDArray[np.int64], population: Population
) -> NDArray[np.int64]:
    """Convert euro amounts to minor units of the merchant's local currency."""
    local = euros * COUNTRY_EUR_RATE[population.merchant_country[merchant]]
    return np.maximum(np.round(local * 100), 1).astype(np.int64)


def _pick_in_groups(
    groups: tuple[NDArray[np.int64], ...], group: NDArray[np.int64], rng: np.random.Generator
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Pick one member of each row's group uniformly; the mask says which groups were empty."""
    sizes = np.array([g.size for g in groups], dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    flat = np.concatenate([*groups, np.zeros(1, dtype=np.int64)])
    offset = np.floor(rng.random(group.size) * sizes[group]).astype(np.int64)
    found = sizes[group] > 0
    return flat[np.where(found, starts[group] + offset, -1)], found


@dataclass(frozen=True, slots=True)
class Trips:
    """Who travels abroad in a period of days, where to, from which day and for how long.

    Days count from the period's first day. The day out and the day back have no
    card-present activity, so home and destination are always a day apart and genuine
    travel never looks impossible.
    """

    travels: NDArray[np.bool_]
    destination: NDArray[np.int64]
    leave: NDArray[np.int64]
    length: NDArray[np.int64]


def draw_trips(population: Population, days: int, rng: np.random.Generator) -> Trips:
    """Draw at most one trip per user within a period of ``days`` days."""
    users = population.users
    length = rng.integers(_TRIP_DAYS_MIN, _TRIP_DAYS_MAX + 1, size=users)
    leave = np.floor(rng.random(users) * np.maximum(days - length - 1, 0)).astype(np.int64)
    chance = 1 - np.exp(-_TRIPS_PER_USER_PER_DAY * days)
    travels = (rng.random(users) < chance) & (days >= length + 2)
    has_shops = np.array([g.size > 0 for g in population.pos_by_city])
    destination = rng.integers(0, has_shops.size, size=users)
    home_country = population.city_country[population.home_city]
    travels &= has_shops[destination] & (population.city_country[destination] != home_country)
    return Trips(travels, destination, leave, length)


def legit_transactions(
    population: Population, start_ms: int, days: int, rng: np.random.Generator
) -> TxColumns:
    """Draw every genuine transaction of ``days`` days from ``start_ms`` (unsorted)."""
    counts = rng.poisson(population.tx_per_day * days)
    user = np.repeat(np.arange(population.users, dtype=np.int64), counts)
    size = user.size

    start_weekday = int((start_ms // DAY_MS + 3) % 7)  # 1970-01-01 was a Thursday
    day_weight = WEEKDAY_WEIGHTS[(start_weekday + np.arange(days)) % 7]
    day = rng.choice(days, size=size, p=day_weight / day_weight.sum()).astype(np.int64)
    local_second = rng.choice(24, size=size, p=HOURLY_WEIGHTS) * 3600 + rng.integers(0, 3600, size)
    utc_second = (local_second - population.city_utc_offset_s[population.home_city[user]]) % 86_400
    time_ms = start_ms + day * DAY_MS + utc_second * 1000 + rng.integers(0, 1000, size)
    channel_draw = rng.random(size)
    trips = draw_trips(population, days, rng)
    return dress_transactions(population, user, time_ms, day, channel_draw, trips, rng)


def dress_transactions(
    population: Population,
    user: NDArray[np.int64],
    time_ms: NDArray[np.int64],
    day: NDArray[np.int64],
    channel_draw: NDArray[np.float64],
    trips: Trips,
    rng: np.random.Generator,
) -> TxColumns:
    """Give each (user, time) a channel, merchant, amount, card and device, as its owner would.

    ``day`` counts from the first day of ``trips``' period; ``channel_draw`` is a uniform
    draw per row. Shared by the history (whole periods) and the live stream (short windows
    of a longer period), so genuine rows look alike in both.
    """
    size = user.size
    cdf = population.channel_cdf[user]
    channel = (channel_draw > cdf[:, 0]).astype(np.int64) + (channel_draw > cdf[:, 1])

    trip_day = day - trips.leave[user]
    travels, length = trips.travels[user], trips.length[user]
    abroad = travels & (trip_day >= 1) & (trip_day <= length)
    in_transit = travels & ((trip_day == 0) | (trip_day == length + 1))
    channel[in_transit & (channel != ECOM)] = ECOM
    city = np.where(abroad, trips.destination[user], population.home_city[user])

    merchant = np.empty(size, dtype=np.int64)
    atm_rows = np.flatnonzero(channel == ATM)
    atm_pick, atm_found = _pick_in_groups(population.atm_by_city, city[atm_rows], rng)
    merchant[atm_rows] = atm_pick
    channel[atm_rows[~atm_found]] = POS  # no cash machine in town: pay by card instead

    pos_rows = np.flatnonzero(channel == POS)
    pos_pick, _ = _pick_in_groups(population.pos_by_city, city[pos_rows], rng)
    favourite = population.favourite_pos[
        user[pos_rows], rng.integers(0, FAVOURITE_POS, pos_rows.size)
    ]
    use_favourite = ~abroad[pos_rows] & (rng.random(pos_rows.size) < _FAVOURITE_SHARE)
    merchant[pos_rows] = np.where(use_favourite, favourite, pos_pick)

    ecom_rows = np.flatnonzero(channel == ECOM)
    favourite = population.favourite_ecom[
        user[ecom_rows], rng.integers(0, FAVOURITE_ECOM, ecom_rows.size)
    ]
    anywhere = rng.choice(population.ecom_merchants, size=ecom_rows.size)
    use_favourite = rng.random(ecom_rows.size) < 0.75
    merchant[ecom_rows] = np.where(use_favourite, favourite, anywhere)

    euros = (
        population.amount_scale_eur[user]
        * _AMOUNT_FACTOR[population.merchant_mcc[merchant]]
        * rng.lognormal(0.0, 0.6, size)
    )
    cents = euros_to_cents(np.clip(euros, 0.8, 8000.0), merchant, population)
    is_atm = population.merchant_kind[merchant] == ATM
    cents[is_atm] = np.maximum(np.round(cents[is_atm] / 2000), 1) * 2000  # notes of 20

    second_card = (population.card_count[user] > 1) & (rng.random(size) < 0.25)
    device_slot = np.floor(rng.random(size) * population.device_count[user]).astype(np.int64)
    online = population.merchant_kind[merchant] == ECOM
    return TxColumns(
        time_ms=time_ms.astype(np.int64),
        user=user,
        card=population.card_first[user] + second_card,
        merchant=merchant,
        amount_cents=cents,
        country=population.merchant_country[merchant],
        lat=population.merchant_lat[merchant],
        lon=population.merchant_lon[merchant],
        device=np.where(online, population.device_first[user] + device_slot, NO_DEVICE),
        pattern=np.zeros(size, dtype=np.int64),
    )
