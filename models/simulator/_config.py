"""The simulator's knobs and the names of the fraud patterns it plants.

Kept apart from the generators so that the CLI, the live producer and the tests agree on
one validated configuration, and so that a bad size or rate fails before any work starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from models.exceptions import SimulatorError

__all__ = [
    "DEFAULT_FRAUD_RATE",
    "DEFAULT_START",
    "LEGIT",
    "PATTERNS",
    "SCHEMA_VERSION",
    "SimulatorConfig",
]

#: Pattern tag of a genuine transaction; the empty string keeps the column a plain string.
LEGIT = ""

#: Every fraud pattern the simulator plants, in the order of their integer codes (1, 2, ...).
PATTERNS: tuple[str, ...] = (
    "card_testing",
    "account_takeover",
    "impossible_travel",
    "compromised_merchant",
    "spending_spree",
)

#: Version of the Transaction contract the simulated rows follow.
SCHEMA_VERSION = 1

#: Share of fraudulent rows aimed at; card fraud datasets sit around half a percent to one.
DEFAULT_FRAUD_RATE = 0.008

#: A fixed start so that two runs with the same seed write byte-identical histories.
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_USERS = 10
_MIN_MERCHANTS = 10
_MAX_FRAUD_RATE = 0.2
# Ids embed the seed; ten digits at most keep any digit run far from a card number's 13.
_MAX_SEED = 2**32 - 1


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """What to simulate; equal configs always produce equal histories and live streams.

    ``fraud_rate`` is a target: each pattern gets at least one episode so that a small
    population still shows every pattern, which can push tiny configs above the target.
    """

    users: int = 2000
    merchants: int = 500
    days: int = 30
    seed: int = 7
    fraud_rate: float = DEFAULT_FRAUD_RATE
    start: datetime = field(default=DEFAULT_START)

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.users < _MIN_USERS:
            problems.append(f"users must be at least {_MIN_USERS}, got {self.users}")
        if self.merchants < _MIN_MERCHANTS:
            problems.append(f"merchants must be at least {_MIN_MERCHANTS}, got {self.merchants}")
        if self.days < 1:
            problems.append(f"days must be at least 1, got {self.days}")
        if not 0 <= self.seed <= _MAX_SEED:
            problems.append(f"seed must be between 0 and {_MAX_SEED}, got {self.seed}")
        if not (math.isfinite(self.fraud_rate) and 0 < self.fraud_rate <= _MAX_FRAUD_RATE):
            problems.append(f"fraud rate must be in (0, {_MAX_FRAUD_RATE}], got {self.fraud_rate}")
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            problems.append("start must be timezone-aware (e.g. 2026-01-01T00:00:00Z)")
        if problems:
            raise SimulatorError("; ".join(problems))

    @property
    def start_ms(self) -> int:
        """Start of the history in epoch milliseconds, the simulator's internal clock unit."""
        return (self.start - _EPOCH) // timedelta(milliseconds=1)
