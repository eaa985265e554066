"""Users and merchants: who shops where, how often, how much, with which cards and devices.

The population is drawn once per seed and shared by the history and the live stream, so
the same users keep their habits (home city, favourite shops, devices) across both. Fraud
is only visible against such habits: a new device, a far-away city, an unusual amount.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from models.simulator._config import SimulatorConfig
from models.simulator._geography import ATM, CITIES, COUNTRIES, ECOM, MCCS, POS

__all__ = ["MEAN_TX_PER_USER_PER_DAY", "Population", "build_population", "tokens"]

FAVOURITE_POS = 6
FAVOURITE_ECOM = 4
_MERCHANT_JITTER_DEG = 0.04  # about 4 km: merchants spread over the city
_KIND_SHARE = np.array([0.6, 0.3, 0.1])  # pos, ecom, atm
_MASK32 = np.uint64(0xFFFFFFFF)
# Genuine transactions per user per day: lognormal around a median, clipped to [low, high].
_TX_PER_DAY_MEDIAN = 3.4
_TX_PER_DAY_SIGMA = 0.55
_TX_PER_DAY_LOW, _TX_PER_DAY_HIGH = 0.2, 25.0


def _clipped_lognormal_mean(median: float, sigma: float, low: float, high: float) -> float:
    """E[clip(X, low, high)] for a lognormal X: exact, so sizing needs no simulation."""
    mu = math.log(median)

    def below(x: float) -> float:  # P(X < x)
        return 0.5 * (1 + math.erf((math.log(x) - mu) / (sigma * math.sqrt(2))))

    def mass_below(x: float) -> float:  # E[X; X < x]
        z = (math.log(x) - mu - sigma**2) / (sigma * math.sqrt(2))
        return math.exp(mu + sigma**2 / 2) * 0.5 * (1 + math.erf(z))

    inside = mass_below(high) - mass_below(low)
    return low * below(low) + inside + high * (1 - below(high))


#: Mean genuine transactions per user per day (about 3.96); sizes live populations.
MEAN_TX_PER_USER_PER_DAY = _clipped_lognormal_mean(
    _TX_PER_DAY_MEDIAN, _TX_PER_DAY_SIGMA, _TX_PER_DAY_LOW, _TX_PER_DAY_HIGH
)


@dataclass(frozen=True, slots=True)
class Population:
    """Everything static about users and merchants, as arrays indexed by user or merchant."""

    seed: int
    home_city: NDArray[np.int64]
    tx_per_day: NDArray[np.float64]
    amount_scale_eur: NDArray[np.float64]
    channel_cdf: NDArray[np.float64]  # (users, 3): cumulative pos, ecom, atm shares
    card_first: NDArray[np.int64]
    card_count: NDArray[np.int64]
    device_first: NDArray[np.int64]
    device_count: NDArray[np.int64]
    favourite_pos: NDArray[np.int64]  # (users, FAVOURITE_POS) merchant codes
    favourite_ecom: NDArray[np.int64]  # (users, FAVOURITE_ECOM) merchant codes
    merchant_kind: NDArray[np.int64]
    merchant_mcc: NDArray[np.int64]  # position in MCCS
    merchant_city: NDArray[np.int64]
    merchant_country: NDArray[np.int64]
    merchant_lat: NDArray[np.float64]  # NaN for online merchants
    merchant_lon: NDArray[np.float64]
    city_country: NDArray[np.int64]
    city_utc_offset_s: NDArray[np.int64]
    city_lat: NDArray[np.float64]
    city_lon: NDArray[np.float64]
    pos_by_city: tuple[NDArray[np.int64], ...]
    atm_by_city: tuple[NDArray[np.int64], ...]
    ecom_merchants: NDArray[np.int64]

    @property
    def users(self) -> int:
        """Number of users."""
        return int(self.home_city.shape[0])

    @property
    def merchants(self) -> int:
        """Number of merchants."""
        return int(self.merchant_kind.shape[0])

    @property
    def device_count_total(self) -> int:
        """Number of genuine devices; fraudsters' devices are numbered after them."""
        return int(self.device_first[-1] + self.device_count[-1])


def tokens(prefix: str, codes: NDArray[np.int64], salt: int) -> list[str]:
    """Render opaque, unique tokens (``card-1f3a9c0e``) so ids never look like card numbers.

    A 32-bit bijective hash keeps distinct codes distinct while hiding their order.
    """
    mixed = (codes.astype(np.uint64) + np.uint64(salt)) & _MASK32
    for _ in range(2):
        mixed = ((mixed ^ (mixed >> np.uint64(16))) * np.uint64(0x45D9F3B)) & _MASK32
    mixed = mixed ^ (mixed >> np.uint64(16))
    return [f"{prefix}{value:08x}" for value in mixed.tolist()]


def _group_by_city(
    merchants: NDArray[np.int64], cities: NDArray[np.int64]
) -> tuple[NDArray[np.int64], ...]:
    return tuple(merchants[cities[merchants] == city] for city in range(len(CITIES)))


def _merchants(count: int, rng: np.random.Generator) -> dict[str, NDArray[np.int64]]:
    kind = rng.choice(3, size=count, p=_KIND_SHARE).astype(np.int64)
    kind[:3] = (POS, ECOM, ATM)  # every world has a shop, a web shop and a cash machine
    mcc = np.empty(count, dtype=np.int64)
    for code in (POS, ECOM, ATM):
        options = np.array([i for i, m in enumerate(MCCS) if m.kind == code])
        weights = np.array([MCCS[i].weight for i in options])
        rows = np.flatnonzero(kind == code)
        mcc[rows] = rng.choice(options, size=rows.size, p=weights / weights.sum())
    city_weight = np.array([city.weight for city in CITIES])
    city = rng.choice(len(CITIES), size=count, p=city_weight / city_weight.sum()).astype(np.int64)
    return {"kind": kind, "mcc": mcc, "city": city}


def build_population(config: SimulatorConfig) -> Population:
    """Draw users and merchants for a seed; the same seed always yields the same world."""
    rng = np.random.default_rng([config.seed, 0])
    shops = _merchants(config.merchants, rng)
    kind, city = shops["kind"], shops["city"]
    city_country = np.array([COUNTRIES.index(c.country) for c in CITIES], dtype=np.int64)
    city_lat = np.array([c.lat for c in CITIES])
    city_lon = np.array([c.lon for c in CITIES])
    located = kind != ECOM
    jitter = rng.normal(0.0, _MERCHANT_JITTER_DEG, size=(config.merchants, 2))
    merchant_lat = np.where(located, np.round(city_lat[city] + jitter[:, 0], 5), np.nan)
    merchant_lon = np.where(located, np.round(city_lon[city] + jitter[:, 1], 5), np.nan)

    all_merchants = np.arange(config.merchants, dtype=np.int64)
    pos_by_city = _group_by_city(all_merchants[kind == POS], city)
    atm_by_city = _group_by_city(all_merchants[kind == ATM], city)
    ecom = all_merchants[kind == ECOM]

    # Users live only where there are shops, weighted like the cities themselves.
    livable = np.array(
        [c.weight if pos.size else 0.0 for c, pos in zip(CITIES, pos_by_city, strict=True)]
    )
    home = rng.choice(len(CITIES), size=config.users, p=livable / livable.sum()).astype(np.int64)

    favourite_pos = np.empty((config.users, FAVOURITE_POS), dtype=np.int64)
    for home_city in np.unique(home):
        residents = np.flatnonzero(home == home_city)
        favourite_pos[residents] = rng.choice(
            pos_by_city[home_city], size=(residents.size, FAVOURITE_POS)
        )
    # Online favourites lean to shops in the user's own country.
    ecom_country = city_country[city[ecom]]
    favourite_ecom = rng.choice(ecom, size=(config.users, FAVOURITE_ECOM))
    for country in np.unique(city_country[home]):
        domestic = ecom[ecom_country == country]
        residents = np.flatnonzero(city_country[home] == country)
        if domestic.size:
            local = rng.random((residents.size, FAVOURITE_ECOM)) < 0.7
            picks = rng.choice(domestic, size=(residents.size, FAVOURITE_ECOM))
            favourite_ecom[residents] = np.where(local, picks, favourite_ecom[residents])

    channel_share = rng.dirichlet([6.0, 3.0, 0.6], size=config.users)
    card_count = np.where(rng.random(config.users) < 0.15, 2, 1).astype(np.int64)
    device_count = np.where(rng.random(config.users) < 0.3, 2, 1).astype(np.int64)
    return Population(
        seed=config.seed,
        home_city=home,
        tx_per_day=np.clip(
            rng.lognormal(np.log(_TX_PER_DAY_MEDIAN), _TX_PER_DAY_SIGMA, config.users),
            _TX_PER_DAY_LOW,
            _TX_PER_DAY_HIGH,
        ),
        amount_scale_eur=np.clip(rng.lognormal(np.log(16.0), 0.5, config.users), 3.0, 300.0),
        channel_cdf=np.cumsum(channel_share, axis=1),
        card_first=np.concatenate(([0], np.cumsum(card_count)[:-1])).astype(np.int64),
        card_count=card_count,
        device_first=np.concatenate(([0], np.cumsum(device_count)[:-1])).astype(np.int64),
        device_count=device_count,
        favourite_pos=favourite_pos,
        favourite_ecom=favourite_ecom,
        merchant_kind=kind,
        merchant_mcc=shops["mcc"],
        merchant_city=city,
        merchant_country=city_country[city],
        merchant_lat=merchant_lat,
        merchant_lon=merchant_lon,
        city_country=city_country,
        city_utc_offset_s=np.array([int(c.utc_offset_hours * 3600) for c in CITIES]),
        city_lat=city_lat,
        city_lon=city_lon,
        pos_by_city=pos_by_city,
        atm_by_city=atm_by_city,
        ecom_merchants=ecom,
    )
