"""Per-user and per-merchant velocity features, as plain state classes.

One state object per key (user or merchant) holds exactly what its windows need, is
picklable (Bytewax snapshots it for recovery) and says when it can be evicted. The
dataflow, training and backtests all compute features through these classes, so the
model sees in production exactly what it was trained on. See ``UserVelocity`` for the
precise window definitions (exact short windows, bucketed 7d/30d, lateness).
"""

from operators.velocity._constants import DEFAULT_LATENESS_MS
from operators.velocity._event import (
    MERCHANT_FEATURES,
    USER_FEATURES,
    VelocityEvent,
    WindowResult,
)
from operators.velocity._merchant import MerchantVelocity
from operators.velocity._recent_ids import RecentIds
from operators.velocity._user import UserVelocity

__all__ = [
    "DEFAULT_LATENESS_MS",
    "MERCHANT_FEATURES",
    "USER_FEATURES",
    "MerchantVelocity",
    "RecentIds",
    "UserVelocity",
    "VelocityEvent",
    "WindowResult",
]
