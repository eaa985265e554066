"""Time units, window horizons and bucket sizes shared by the velocity states.

Kept in one place because the windows' documented semantics (and the tests' oracle)
depend on these exact numbers: changing a bucket size changes the features a model was
trained on.
"""

from __future__ import annotations

__all__ = [
    "AMOUNT_SCALE",
    "DAY_MS",
    "DEFAULT_LATENESS_MS",
    "FOREVER",
    "HOUR_MS",
    "LONGEST_USER_MS",
    "MERCHANT_KEEP_MS",
    "MINUTE_MS",
    "MONTH_BUCKETS",
    "MONTH_BUCKET_MS",
    "NEVER",
    "RAW_KEEP_MS",
    "SECOND_MS",
    "WEEK_BUCKETS",
    "WEEK_BUCKET_MS",
]

SECOND_MS = 1_000
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000

#: Default allowed lateness: an event up to 5 minutes behind the key's newest event
#: gets exactly the features it would have had in order.
DEFAULT_LATENESS_MS = 300_000

#: Amounts are summed as exact integers of 1/10,000 (the contract's finest precision),
#: so sums never drift however many events slide through a window.
AMOUNT_SCALE = 10_000

#: 7d = 24 buckets of 7 h (1/24 of the horizon), aligned on the epoch.
WEEK_BUCKET_MS = 7 * HOUR_MS
WEEK_BUCKETS = 24
#: 30d = 24 buckets of 30 h (1/24 of the horizon), aligned on the epoch.
MONTH_BUCKET_MS = 30 * HOUR_MS
MONTH_BUCKETS = 24

#: The user's longest look-back: 30 days (bucketed windows, previous transaction,
#: first time at a merchant, previous located transaction).
LONGEST_USER_MS = MONTH_BUCKETS * MONTH_BUCKET_MS
#: Raw events are kept for the longest exact window (24 h) or bucket (30 h, the newest
#: bucket of a window is summed from raw events), plus the lateness.
RAW_KEEP_MS = max(DAY_MS, WEEK_BUCKET_MS, MONTH_BUCKET_MS)
#: A merchant's longest window is 24 h.
MERCHANT_KEEP_MS = DAY_MS

#: "No event yet": far enough in the past that no arithmetic on it overflows int64.
NEVER = -(2**62)
#: "Nothing scheduled": a deadline no event time reaches.
FOREVER = 2**62
