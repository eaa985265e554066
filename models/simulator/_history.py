"""One simulated period: genuine activity plus fraud episodes sized to the target rate.

The fraud half is shared by the offline history and by each window of the live stream,
so both carry the same patterns in the same proportions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from models.simulator._columns import TxColumns
from models.simulator._legit import DAY_MS, legit_transactions
from models.simulator._patterns import (
    FraudContext,
    account_takeover,
    card_testing,
    compromised_merchant,
    impossible_travel,
    spending_spree,
    victims_per_breach,
)
from models.simulator._population import Population

__all__ = ["PatternGenerator", "plant_fraud", "simulate_period"]

PatternGenerator = Callable[[FraudContext, int], list[TxColumns]]

# Share of fraudulent rows per pattern, and how many rows an episode has on average.
_ROW_SHARE = {
    "card_testing": 0.25,
    "compromised_merchant": 0.28,
    "account_takeover": 0.15,
    "impossible_travel": 0.12,
    "spending_spree": 0.20,
}
_MEAN_EPISODE_ROWS = {
    "card_testing": 10.5,
    "account_takeover": 4.0,
    "impossible_travel": 2.0,
    "spending_spree": 8.5,
}
# Sprees come last: they feed on the cards that card testing and breaches compromised.
_GENERATORS: tuple[tuple[str, PatternGenerator], ...] = (
    ("card_testing", card_testing),
    ("compromised_merchant", compromised_merchant),
    ("account_takeover", account_takeover),
    ("impossible_travel", impossible_travel),
    ("spending_spree", spending_spree),
)


def _episodes_per_pattern(
    legit_rows: int, users: int, fraud_rate: float, rng: np.random.Generator | None
) -> dict[str, int]:
    """Episodes per pattern for ``legit_rows`` genuine rows.

    A history gets at least one episode of each pattern, so that a small one still shows
    them all. The live stream's windows are many and short, where such a floor would
    inflate fraud; there (``rng`` given) counts are rounded up or down at random instead,
    which keeps the long-run rate exactly on target.
    """
    fraud_rows = fraud_rate * legit_rows / (1 - fraud_rate)
    low, high = victims_per_breach(users)
    mean_rows = {**_MEAN_EPISODE_ROWS, "compromised_merchant": 1.2 * (low + high) / 2}
    expected = {name: share * fraud_rows / mean_rows[name] for name, share in _ROW_SHARE.items()}
    if rng is None:
        return {name: max(1, round(count)) for name, count in expected.items()}
    draws = rng.random(len(expected))
    return {
        name: int(count) + int(draw < count % 1)
        for (name, count), draw in zip(expected.items(), draws, strict=True)
    }


def plant_fraud(context: FraudContext, fraud_rate: float) -> list[TxColumns]:
    """Fraud episodes against ``context.legit``, sized so fraud is ``fraud_rate`` of all rows."""
    rng = None if context.bounded else context.rng
    episodes = _episodes_per_pattern(len(context.legit), context.population.users, fraud_rate, rng)
    parts = []
    for name, generate in _GENERATORS:
        parts.extend(generate(context, episodes[name]))
    return parts


def simulate_period(
    population: Population,
    *,
    start_ms: int,
    days: int,
    fraud_rate: float,
    rng: np.random.Generator,
    first_fraud_device: int,
    on_stage: Callable[[str], None] | None = None,
) -> TxColumns:
    """All transactions of ``days`` days from ``start_ms``, sorted by event time."""
    report = on_stage or (lambda _stage: None)
    report("genuine transactions")
    legit = legit_transactions(population, start_ms, days, rng)
    report("fraud episodes")
    context = FraudContext(
        population=population,
        legit=legit,
        rng=rng,
        start_ms=start_ms,
        end_ms=start_ms + days * DAY_MS,
        next_device=first_fraud_device,
    )
    fraud = plant_fraud(context, fraud_rate)
    report("ordering")
    return TxColumns.concat([legit, *fraud]).sorted_by_time()
