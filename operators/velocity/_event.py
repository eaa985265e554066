"""What the velocity windows read from a transaction, and what they hand back.

A ``VelocityEvent`` is the narrow slice of a ``Transaction`` the windows need, in the
units they compute with (epoch milliseconds, a float amount): converting once at the edge
keeps the per-event hot path free of datetimes and Decimals.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from operators.exceptions import FeatureInputError
from schemas._types import epoch_ms

if TYPE_CHECKING:
    from schemas import Transaction

__all__ = ["MERCHANT_FEATURES", "USER_FEATURES", "VelocityEvent", "WindowResult"]

_WINDOWS = ("1m", "10m", "1h", "24h", "7d", "30d")

#: The per-user features, in the model's input order (see the project conventions).
USER_FEATURES: tuple[str, ...] = (
    *(
        name
        for window in _WINDOWS
        for name in (
            f"user_count_{window}",
            f"user_amount_sum_{window}",
            f"user_amount_mean_{window}",
        )
    ),
    "user_seconds_since_prev",
    "user_amount_ratio_30d",
    "user_amount_zscore_30d",
    "user_distinct_merchants_1h",
    "user_distinct_merchants_24h",
    "user_distinct_countries_24h",
    "user_first_time_merchant",
    "user_travel_kmh",
    "is_night",
    "is_weekend",
    "amount",
)

#: The per-merchant features, in the model's input order.
MERCHANT_FEATURES: tuple[str, ...] = (
    "merchant_count_1h",
    "merchant_count_24h",
    "merchant_distinct_users_1h",
    "merchant_amount_mean_24h",
)

# The datetime range (years 1..9999): what a Transaction can carry, and what keeps every
# bucket key within the states' compact 32-bit arrays.
_FIRST_MS = epoch_ms(datetime(1, 1, 1, tzinfo=UTC))
_LAST_MS = epoch_ms(datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC))


@dataclass(frozen=True, slots=True)
class VelocityEvent:
    """One transaction as the windows see it.

    ``merchant_id`` should be interned (``from_transaction`` does it) so that every state
    that remembers the merchant shares one string instead of holding a copy. The amount
    is resolved to 1/10,000 for the sums, the contract's finest precision.
    """

    tx_id: str
    event_ms: int
    amount: float
    merchant_id: str
    user_id: str
    country: str | None = None
    lat: float | None = None
    lon: float | None = None

    def __post_init__(self) -> None:
        # A NaN amount would poison every sum it ever enters; refuse it at the edge.
        if not math.isfinite(self.amount):
            raise FeatureInputError(f"transaction {self.tx_id!r}: amount must be finite")
        if not _FIRST_MS <= self.event_ms <= _LAST_MS:
            raise FeatureInputError(
                f"transaction {self.tx_id!r}: event_ms {self.event_ms} is outside years 1-9999"
            )

    @classmethod
    def from_transaction(cls, tx: Transaction) -> VelocityEvent:
        """Convert once at the edge of the dataflow (exact ms, interned merchant id)."""
        return cls(
            tx_id=tx.tx_id,
            event_ms=epoch_ms(tx.event_time),
            amount=float(tx.amount),
            merchant_id=sys.intern(tx.merchant_id),
            user_id=sys.intern(tx.user_id),
            country=None if tx.country is None else sys.intern(tx.country),
            lat=tx.lat,
            lon=tx.lon,
        )


@dataclass(frozen=True, slots=True)
class WindowResult:
    """Features of one event (in the state's feature order) and whether it came too late.

    ``late`` means the event was older than the allowed lateness when it arrived: its
    features were computed from whatever state remained, and the dataflow counts it.
    """

    features: dict[str, float]
    late: bool
