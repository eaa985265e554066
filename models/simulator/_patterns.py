"""The fraud patterns, one generator per pattern, each planting whole episodes.

An episode is what one fraudster does to one card (or, for a compromised merchant, one
merchant to many cards). Episodes are built with a short Python loop each — there are
only a few hundred — while every row inside an episode is drawn with numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from models.simulator._columns import NO_DEVICE, TxColumns
from models.simulator._config import PATTERNS
from models.simulator._geography import (
    ATM,
    COUNTRIES,
    ECOM,
    HIGH_VALUE_MCCS,
    MCCS,
    TESTING_MCCS,
    haversine_km,
)
from models.simulator._legit import DAY_MS, euros_to_cents
from models.simulator._population import Population

__all__ = [
    "FraudContext",
    "account_takeover",
    "card_testing",
    "compromised_merchant",
    "impossible_travel",
    "spending_spree",
    "victims_per_breach",
]

_MINUTE_MS = 60_000
_HOUR_MS = 3_600_000
_FAR_KM = 2000.0


@dataclass(frozen=True, slots=True)
class _Compromise:
    """A card the fraudsters now hold, and since when: the seed of a later spree."""

    user: int
    card: int
    time_ms: int


_IS_TESTING_MCC = np.array([mcc.code in TESTING_MCCS for mcc in MCCS])
_IS_HIGH_VALUE_MCC = np.array([mcc.code in HIGH_VALUE_MCCS for mcc in MCCS])


@dataclass(slots=True)
class FraudContext:
    """What every pattern needs: the world, the genuine history to contrast with, the dice.

    A history is ``bounded``: every episode fits between ``start_ms`` and ``end_ms``. A
    window of the endless live stream is not: episodes start inside the window but may run
    on past its end (the stream carries those rows over), so windows of a few minutes still
    hold breaches lasting days and sprees hours after the card was stolen.
    """

    population: Population
    legit: TxColumns
    rng: np.random.Generator
    start_ms: int
    end_ms: int
    next_device: int
    bounded: bool = True
    compromised: list[_Compromise] = field(default_factory=list)
    _user_order: NDArray[np.int64] = field(init=False)
    _sorted_users: NDArray[np.int64] = field(init=False)

    def __post_init__(self) -> None:
        # Sorting the rows, not bucketing all users: a live window of a large population
        # holds a few thousand users out of millions.
        self._user_order = np.argsort(self.legit.user, kind="stable").astype(np.int64)
        self._sorted_users = self.legit.user[self._user_order]

    def user_rows(self, user: int) -> NDArray[np.int64]:
        """Positions of a user's genuine transactions: the habits a fraud deviates from."""
        first, last = np.searchsorted(self._sorted_users, [user, user + 1])
        return self._user_order[first:last]

    def new_device(self) -> int:
        """Issue a device no genuine user has ever used: the fraudster's phone or browser."""
        self.next_device += 1
        return self.next_device - 1

    def random_start(self, span_ms: int) -> int:
        """Draw a start time that leaves room for an episode lasting ``span_ms`` if bounded."""
        room = self.end_ms - self.start_ms - (span_ms + 1 if self.bounded else 0)
        return self.start_ms + int(self.rng.integers(0, max(room, 1)))

    def random_card(self, user: int) -> int:
        """One of the user's cards."""
        pop = self.population
        return int(pop.card_first[user] + self.rng.integers(0, pop.card_count[user]))

    def episode(
        self,
        pattern: str,
        time_ms: NDArray[np.int64],
        user: NDArray[np.int64] | int,
        card: NDArray[np.int64] | int,
        merchant: NDArray[np.int64],
        cents: NDArray[np.int64],
        device: NDArray[np.int64] | int,
        country: int | None = None,
    ) -> TxColumns:
        """Assemble rows; location and (by default) country follow from the merchant."""
        size = merchant.size
        pop = self.population

        def column(value: NDArray[np.int64] | int) -> NDArray[np.int64]:
            return np.broadcast_to(np.asarray(value, dtype=np.int64), (size,)).copy()

        return TxColumns(
            time_ms=column(time_ms),
            user=column(user),
            card=column(card),
            merchant=merchant.astype(np.int64),
            amount_cents=column(cents),
            country=column(pop.merchant_country[merchant] if country is None else country),
            lat=pop.merchant_lat[merchant],
            lon=pop.merchant_lon[merchant],
            device=column(device),
            pattern=column(PATTERNS.index(pattern) + 1),
        )


def _burst_times(
    ctx: FraudContext, rows: int, mean_gap_ms: float, floor_ms: int
) -> NDArray[np.int64]:
    gaps = (ctx.rng.exponential(mean_gap_ms, rows) + floor_ms).astype(np.int64)
    return ctx.random_start(int(gaps.sum())) + np.cumsum(gaps)


def card_testing(ctx: FraudContext, episodes: int) -> list[TxColumns]:
    """Bursts of tiny charges at web shops the cardholder never used, to see if a card works.

    Fraudsters favour a handful of lax digital merchants, so those few see many cards.
    """
    pop, rng = ctx.population, ctx.rng
    lax = pop.ecom_merchants[_IS_TESTING_MCC[pop.merchant_mcc[pop.ecom_merchants]]]
    if lax.size == 0:
        lax = pop.ecom_merchants
    lax = rng.permutation(lax)[: max(3, int(np.ceil(0.05 * pop.ecom_merchants.size)))]
    out = []
    for _ in range(episodes):
        user = int(rng.integers(0, pop.users))
        seen = ctx.legit.merchant[ctx.user_rows(user)]
        sites = np.setdiff1d(lax, seen)
        if sites.size == 0:
            sites = np.setdiff1d(pop.ecom_merchants, seen)
        if sites.size == 0:
            continue
        rows = int(rng.integers(6, 16))
        sites = rng.choice(sites, size=min(sites.size, int(rng.integers(1, 4))), replace=False)
        merchant = sites[rng.integers(0, sites.size, rows)]
        cents = np.where(rng.random(rows) < 0.3, 100, rng.integers(50, 500, rows))
        times = _burst_times(ctx, rows, 40_000, 2_000)
        card = ctx.random_card(user)
        out.append(
            ctx.episode("card_testing", times, user, card, merchant, cents, ctx.new_device())
        )
        ctx.compromised.append(_Compromise(user, card, int(times[-1])))
    return out


def account_takeover(ctx: FraudContext, episodes: int) -> list[TxColumns]:
    """Someone logs in from a new device in a new country, then buys big online."""
    pop, rng, legit = ctx.population, ctx.rng, ctx.legit
    if len(legit) == 0:
        return []
    ecom_country = pop.merchant_country[pop.ecom_merchants]
    out = []
    for _ in range(episodes):
        user = int(legit.user[rng.integers(0, len(legit))])
        rows_of_user = ctx.user_rows(user)
        seen_countries = np.union1d(
            legit.country[rows_of_user], [pop.city_country[pop.home_city[user]]]
        )
        shops = pop.ecom_merchants[~np.isin(ecom_country, seen_countries)]
        if shops.size:
            country = int(pop.merchant_country[rng.choice(shops)])
            shops = shops[pop.merchant_country[shops] == country]
        else:
            unseen = np.setdiff1d(np.arange(len(COUNTRIES)), seen_countries)
            if unseen.size == 0:
                continue
            country = int(rng.choice(unseen))
            shops = pop.ecom_merchants
        rows = int(rng.integers(2, 7))
        big = max(250.0, float(pop.amount_scale_eur[user]) * rng.uniform(8, 20))
        merchant = rng.choice(shops, size=rows)
        euros = np.clip(big * rng.uniform(0.8, 1.6, rows), 200.0, 6000.0)
        times = _burst_times(ctx, rows, 15 * _MINUTE_MS, 30_000)
        out.append(
            ctx.episode(
                "account_takeover",
                times,
                user,
                int(pop.card_first[user]),
                merchant,
                euros_to_cents(euros, merchant, pop),
                ctx.new_device(),
                country,
            )
        )
    return out


def impossible_travel(ctx: FraudContext, episodes: int) -> list[TxColumns]:
    """Use a cloned card in person far away, soon after the real card was used at home.

    The gap is chosen so the implied speed is between 1,500 and 6,000 km/h: faster than
    any airliner, yet not so absurd that only an exact-duplicate check would catch it.
    """
    pop, rng, legit = ctx.population, ctx.rng, ctx.legit
    margin_ms = 14 * _HOUR_MS if ctx.bounded else 0  # the slowest trip fits in the period
    anchors = np.flatnonzero(np.isfinite(legit.lat) & (legit.time_ms < ctx.end_ms - margin_ms))
    located = np.flatnonzero(pop.merchant_kind != ECOM)
    out = []
    for anchor in rng.choice(anchors, size=min(episodes, anchors.size), replace=False):
        distance = haversine_km(
            legit.lat[anchor],
            legit.lon[anchor],
            pop.merchant_lat[located],
            pop.merchant_lon[located],
        )
        if distance.max() < 300:  # a one-city world has nowhere far to go
            continue
        far = located[distance >= min(_FAR_KM, 0.8 * float(distance.max()))]
        first = int(rng.choice(far))
        same_city = located[pop.merchant_city[located] == pop.merchant_city[first]]
        rows = int(rng.integers(1, 4))
        merchant = np.concatenate(([first], rng.choice(same_city, size=rows - 1)))
        km = float(haversine_km(legit.lat[anchor], legit.lon[anchor], *_where(pop, first)))
        window_ms = km / rng.uniform(1500, 6000) * _HOUR_MS
        offsets = np.sort(rng.uniform(0.3, 1.0, rows)) * window_ms
        times = legit.time_ms[anchor] + np.maximum(offsets, 1000).astype(np.int64)
        euros = np.where(
            pop.merchant_kind[merchant] == ATM,
            rng.uniform(100, 500, rows),
            rng.uniform(60, 900, rows),
        )
        cents = euros_to_cents(euros, merchant, pop)
        cents = np.where(pop.merchant_kind[merchant] == ATM, np.round(cents / 2000) * 2000, cents)
        card = int(legit.card[anchor])
        user = int(legit.user[anchor])
        out.append(
            ctx.episode(
                "impossible_travel", times, user, card, merchant, cents.astype(np.int64), NO_DEVICE
            )
        )
    return out


def _where(pop: Population, merchant: int) -> tuple[float, float]:
    return float(pop.merchant_lat[merchant]), float(pop.merchant_lon[merchant])


def victims_per_breach(users: int) -> tuple[int, int]:
    """How many cardholders one compromised merchant hits, scaled to the population."""
    low = max(2, min(15, users // 8))
    return low, max(low, min(50, users // 4))


def compromised_merchant(ctx: FraudContext, episodes: int) -> list[TxColumns]:
    """Let a breached web shop charge many of its customers' cards over a few days.

    The rows concentrate on one merchant across many users: the signal is in the
    merchant's sudden fraud rate, not in any single cardholder's behaviour. Victims are
    mostly the shop's customers: those seen in the period, or for a live window (minutes
    long) the users who habitually shop there.
    """
    pop, rng, legit = ctx.population, ctx.rng, ctx.legit
    pairs = np.unique(legit.merchant * pop.users + legit.user)
    customers = np.bincount(pairs // pop.users, minlength=pop.merchants)[pop.ecom_merchants]
    weight = customers + 1.0
    breached = rng.choice(
        pop.ecom_merchants,
        size=min(episodes, pop.ecom_merchants.size),
        replace=False,
        p=weight / weight.sum(),
    )
    low, high = victims_per_breach(pop.users)
    span_days = max(1, (ctx.end_ms - ctx.start_ms) // DAY_MS)
    out = []
    for merchant in breached:
        days_open = int(rng.integers(2, 7))
        window_ms = (min(span_days, days_open) if ctx.bounded else days_open) * DAY_MS - 1
        opens = ctx.random_start(window_ms)
        wanted = int(rng.integers(low, high + 1))
        if ctx.bounded:
            customers_seen = pairs[pairs // pop.users == merchant] % pop.users
        else:  # a live window is too short to have seen them: its habitual customers
            customers_seen = np.flatnonzero((pop.favourite_ecom == merchant).any(axis=1))
        regulars = rng.permutation(customers_seen)[:wanted]
        not_regular = np.ones(pop.users, dtype=bool)
        not_regular[regulars] = False
        others = np.flatnonzero(not_regular)  # setdiff1d's result, without sorting all users
        extra = rng.choice(others, size=min(others.size, wanted - regulars.size), replace=False)
        victims = np.concatenate((regulars, extra)).astype(np.int64)
        user = np.repeat(victims, np.where(rng.random(victims.size) < 0.2, 2, 1))
        times = opens + rng.integers(0, window_ms, user.size)
        shop = np.full(user.size, merchant, dtype=np.int64)
        euros = np.clip(rng.lognormal(np.log(60.0), 0.6, user.size), 10.0, 500.0)
        card = pop.card_first[user]
        cents = euros_to_cents(euros, shop, pop)
        out.append(ctx.episode("compromised_merchant", times, user, card, shop, cents, NO_DEVICE))
        for victim, victim_card, time_ms in zip(
            user.tolist(), card.tolist(), times.tolist(), strict=True
        ):
            ctx.compromised.append(_Compromise(victim, victim_card, time_ms))
    return out


def spending_spree(ctx: FraudContext, episodes: int) -> list[TxColumns]:
    """After a card is compromised, it is drained fast: many pricey buys within hours.

    Sprees follow the cards compromised by card testing and breached merchants, so a
    model can learn that those events predict what comes next.
    """
    pop, rng = ctx.population, ctx.rng
    high_value = _IS_HIGH_VALUE_MCC[pop.merchant_mcc]
    pricey_online = pop.ecom_merchants[high_value[pop.ecom_merchants]]
    if pricey_online.size == 0:
        pricey_online = pop.ecom_merchants
    order = rng.permutation(len(ctx.compromised))
    pool = [ctx.compromised[i] for i in order]
    drained: set[int] = set()  # a card is drained once; a second spree would be its own story
    out = []
    for _ in range(episodes):
        rows = int(rng.integers(5, 13))
        gaps = (rng.exponential(20 * _MINUTE_MS, rows) + _MINUTE_MS).astype(np.int64)
        span = int(gaps.sum())
        while pool and (
            pool[-1].card in drained
            or (ctx.bounded and pool[-1].time_ms + _HOUR_MS + span >= ctx.end_ms)
        ):
            pool.pop()
        if pool:
            breach = pool.pop()
            delay = int(rng.integers(_HOUR_MS, 72 * _HOUR_MS))
            begin = breach.time_ms + delay
            if ctx.bounded:
                begin = min(begin, ctx.end_ms - span - 1)
            user, card = breach.user, breach.card
            drained.add(card)
        else:
            user = int(rng.integers(0, pop.users))
            card, begin = ctx.random_card(user), ctx.random_start(span)
        home_city = pop.home_city[user]
        pricey_nearby = pop.pos_by_city[home_city][high_value[pop.pos_by_city[home_city]]]
        merchant = rng.choice(np.concatenate((pricey_online, pricey_nearby)), size=rows)
        euros = np.clip(rng.lognormal(np.log(300.0), 0.5, rows), 60.0, 3000.0)
        device = np.where(pop.merchant_kind[merchant] == ECOM, ctx.new_device(), NO_DEVICE)
        cents = euros_to_cents(euros, merchant, pop)
        out.append(
            ctx.episode(
                "spending_spree", begin + np.cumsum(gaps), user, card, merchant, cents, device
            )
        )
    return out
