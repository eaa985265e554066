"""How many users and merchants make a live stream of a given rate look like the history.

In a time-faithful live stream every user transacts as often as in the history (about
four times a day), so the rate is set by the size of the population, not by squeezing
time. Merchants grow in step with users, in the default configuration's proportion, so
each merchant also keeps its usual number of customers and transactions.
"""

from __future__ import annotations

import math

from models.exceptions import SimulatorError
from models.simulator._config import DEFAULT_FRAUD_RATE, SimulatorConfig
from models.simulator._population import MEAN_TX_PER_USER_PER_DAY

__all__ = [
    "MAX_LIVE_USERS",
    "MIN_LIVE_USERS",
    "merchants_for_users",
    "natural_rate",
    "population_for_rate",
]

#: Largest population :func:`population_for_rate` suggests: about 92 events/s on average,
#: about 600 MB of memory and 3 to 4 s to the first event on 2 cores. Asking for more makes
#: event times run ahead of the clock rather than squeeze them.
MAX_LIVE_USERS = 2_000_000

#: Smallest population it suggests, so that even a trickle has a few merchants and patterns.
MIN_LIVE_USERS = 100

_DAY_S = 86_400
_DEFAULTS = SimulatorConfig()
_MERCHANTS_PER_USER = _DEFAULTS.merchants / _DEFAULTS.users
_MIN_MERCHANTS = 10


def natural_rate(config: SimulatorConfig) -> float:
    """Mean events per second of a live stream of ``config``'s population, fraud included.

    Averaged over a week: busy evenings run up to two and a half times as fast, nights
    about a quarter as fast.
    """
    per_user_per_day = MEAN_TX_PER_USER_PER_DAY / (1 - config.fraud_rate)
    return config.users * per_user_per_day / _DAY_S


def merchants_for_users(users: int) -> int:
    """Merchants for ``users`` users, in the default configuration's proportion."""
    return max(_MIN_MERCHANTS, round(users * _MERCHANTS_PER_USER))


def population_for_rate(rate: float) -> tuple[int, int]:
    """(users, merchants) whose live stream averages ``rate`` events/s with history-like users.

    Users = rate × 86,400 / mean events per user per day, kept within
    [:data:`MIN_LIVE_USERS`, :data:`MAX_LIVE_USERS`]; ``math.inf`` asks for the largest.
    """
    if math.isnan(rate) or rate <= 0:
        raise SimulatorError(f"rate must be positive, got {rate}")
    per_user = MEAN_TX_PER_USER_PER_DAY / (1 - DEFAULT_FRAUD_RATE) / _DAY_S
    users = round(min(rate / per_user, MAX_LIVE_USERS))
    users = max(users, MIN_LIVE_USERS)
    return users, merchants_for_users(users)
