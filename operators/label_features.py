"""Features from analysts' labels, computed only from labels already known at the event.

Labels arrive late (chargebacks, investigations): a label of transaction ``j`` becomes
*known* at ``known_at_j`` (offline: ``event_time_j + label_delay``, 7 days by default;
live: the label message's ``labeled_at``). A feature of an event at ``at`` may use label
``j`` only if ``known_at_j < at`` (strictly: with a zero delay a row never sees its own
label). Nothing else about the future is used, so the model sees offline what the live
system can know, and backtests measure what production would do.

``LABEL_FEATURES`` (float64, NaN = undefined, counts are 0 when there is nothing):

- ``merchant_known_labels_{W}`` / ``merchant_known_fraud_share_{W}``, W in 1d/7d/14d/28d:
  the merchant's labels that became known in ``[at - W, at)``, and the fraud share among
  them (NaN if none). With a constant delay ``d`` these are the labels of the merchant's
  transactions in ``[at - d - W, at - d)``: the handbook's "windows ending at the delay".
- ``merchant_seconds_since_known_fraud``: ``at`` minus the event time of the merchant's
  latest known fraud, in seconds (NaN if none).
- ``merchant_fraud_run_share`` / ``merchant_fraud_run_frauds``: a *run* starts at a
  known fraud whose event time is more than ``run_gap_ms`` (7 days) after every fraud
  known before it at the merchant, and continues while the next known frauds stay within
  the gap. The share is frauds / labels among the labels known since the run began (in
  the order labels became known); a compromised terminal stays near 1, an isolated fraud
  is diluted by the legit labels that follow. NaN / 0 before the merchant's first fraud.
- ``merchant_seconds_since_run_start``: ``at`` minus the event time of the fraud that
  began the current run (how long the episode has lasted; NaN before the first fraud).
- ``user_known_frauds`` / ``user_seconds_since_known_fraud``: the customer's own known
  frauds (all time) and ``at`` minus the event time of the latest one (NaN if none).
- ``user_known_legit`` / ``user_amount_over_known_legit_max``: the customer's known
  legit transactions (all time) and this amount divided by the largest of their amounts
  (NaN without an amount or a known legit amount). Known-legit history is clean of the
  recent, not yet reported frauds that inflate plain spending averages, so an amount
  above everything the customer verifiably spent before is a sharp signal.
- ``pair_prior_transactions``: this customer's earlier transactions at this merchant
  (labelled or not, the current one excluded); ``pair_known_frauds``: the customer's
  known frauds at this merchant.

:class:`KnownLabels` keeps this state incrementally (training replays, backtests and the
live feedback service); :func:`label_features_for_frame` computes the same numbers for a
whole historical frame at once, vectorised (see :mod:`operators._label_frame`).
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING

from operators._label_frame import frame_label_features
from operators.exceptions import FeatureInputError
from operators.velocity import RecentIds
from operators.velocity._constants import DAY_MS, NEVER, SECOND_MS

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from numpy.typing import NDArray

__all__ = [
    "DEFAULT_LABEL_DELAY_MS",
    "DEFAULT_RUN_GAP_MS",
    "LABEL_FEATURES",
    "LABEL_WINDOWS",
    "KnownLabels",
    "label_features_for_frame",
]

#: The handbook's label delay: a transaction's label is known 7 days after it.
DEFAULT_LABEL_DELAY_MS = 7 * DAY_MS
#: Longest silence between known frauds that still continues a merchant's fraud run.
DEFAULT_RUN_GAP_MS = 7 * DAY_MS
#: Merchant windows over the time labels became known: (suffix, width in ms).
LABEL_WINDOWS: tuple[tuple[str, int], ...] = (
    ("1d", DAY_MS),
    ("7d", 7 * DAY_MS),
    ("14d", 14 * DAY_MS),
    ("28d", 28 * DAY_MS),
)
_LONGEST_MS = max(width for _, width in LABEL_WINDOWS)
_WIDTHS = tuple(width for _, width in LABEL_WINDOWS)
#: A merchant's labels older than the longest window (+ this slack for late events) go.
_TRIM_SLACK_MS = DAY_MS

LABEL_FEATURES: tuple[str, ...] = (
    *(
        name
        for suffix, _ in LABEL_WINDOWS
        for name in (f"merchant_known_labels_{suffix}", f"merchant_known_fraud_share_{suffix}")
    ),
    "merchant_seconds_since_known_fraud",
    "merchant_fraud_run_share",
    "merchant_fraud_run_frauds",
    "merchant_seconds_since_run_start",
    "user_known_frauds",
    "user_seconds_since_known_fraud",
    "user_known_legit",
    "user_amount_over_known_legit_max",
    "pair_prior_transactions",
    "pair_known_frauds",
)


class _MerchantLabels:
    """One merchant's known labels inside the longest window, plus its fraud-run state."""

    __slots__ = (
        "fraud_prefix",
        "latest_fraud_ms",
        "run_frauds",
        "run_labels",
        "run_start_ms",
        "times",
    )

    def __init__(self) -> None:
        self.times: list[int] = []  # known_at of retained labels, ascending
        self.fraud_prefix: list[int] = [0]  # [i]: running fraud count before times[i]
        self.latest_fraud_ms = NEVER  # event time of the latest known fraud
        self.run_frauds = 0
        self.run_labels = 0  # 0: no run has started
        self.run_start_ms = NEVER  # event time of the fraud that began the run

    def apply(self, known_at_ms: int, event_ms: int, fraud: int, run_gap_ms: int) -> None:
        times, prefix = self.times, self.fraud_prefix
        if not times or known_at_ms >= times[-1]:
            times.append(known_at_ms)
            prefix.append(prefix[-1] + fraud)
        else:  # known out of order (rare): insert after equal times, shift the sums
            index = bisect_right(times, known_at_ms)
            times.insert(index, known_at_ms)
            prefix.insert(index + 1, prefix[index] + fraud)
            for later in range(index + 2, len(prefix)):
                prefix[later] += fraud
        if fraud:
            if event_ms - self.latest_fraud_ms > run_gap_ms:
                self.run_frauds = self.run_labels = 0
                self.run_start_ms = event_ms
            self.run_frauds += 1
            self.run_labels += 1
            self.latest_fraud_ms = max(self.latest_fraud_ms, event_ms)
        elif self.run_labels:
            self.run_labels += 1

    def values(self, at_ms: int, out: list[float]) -> None:
        times, prefix = self.times, self.fraud_prefix
        end = bisect_left(times, at_ms)
        for width in _WIDTHS:
            start = bisect_left(times, at_ms - width, 0, end)
            labels = end - start
            out.append(float(labels))
            out.append((prefix[end] - prefix[start]) / labels if labels else math.nan)
        latest = self.latest_fraud_ms
        out.append(math.nan if latest == NEVER else (at_ms - latest) / SECOND_MS)
        run = self.run_labels
        out.append(self.run_frauds / run if run else math.nan)
        out.append(float(self.run_frauds))
        start = self.run_start_ms
        out.append(math.nan if start == NEVER else (at_ms - start) / SECOND_MS)
        horizon = at_ms - _LONGEST_MS - _TRIM_SLACK_MS
        if times and times[0] < horizon:
            stale = bisect_left(times, horizon)
            if stale > 32 and 2 * stale > len(times):  # amortised: trim in halves
                del times[:stale]
                del prefix[:stale]


class _UserLabels:
    """One customer's known frauds and known-legit spending."""

    __slots__ = ("frauds", "latest_fraud_ms", "legit", "legit_max")

    def __init__(self) -> None:
        self.frauds = 0
        self.latest_fraud_ms = NEVER
        self.legit = 0
        self.legit_max = math.nan

    def apply(self, event_ms: int, fraud: int, amount: float) -> None:
        if fraud:
            self.frauds += 1
            self.latest_fraud_ms = max(self.latest_fraud_ms, event_ms)
        else:
            self.legit += 1
            if amount == amount and not amount <= self.legit_max:  # NaN-safe max
                self.legit_max = amount

    def values(self, at_ms: int, amount: float, out: list[float]) -> None:
        out.append(float(self.frauds))
        latest = self.latest_fraud_ms
        out.append(math.nan if latest == NEVER else (at_ms - latest) / SECOND_MS)
        out.append(float(self.legit))
        ceiling = self.legit_max
        out.append(amount / ceiling if ceiling > 0 else math.nan)


_NO_MERCHANT = _MerchantLabels()
_NO_USER = _UserLabels()


class KnownLabels:
    """Known labels per merchant, customer and pair, queried point-in-time.

    ``observe_label`` may be called before a label is known (an offline replay can hand
    over every label up front); the label waits until a query's ``at_ms`` passes its
    ``known_at_ms``, then labels are applied in ``(known_at, observation)`` order. Queries
    are expected in non-decreasing ``at_ms`` (event-time order, as a replay or the live
    stream sends them); a query behind the newest one still counts windows exactly but
    sees the run and latest-fraud state of every label applied so far, as a live system
    would. A repeated ``tx_id`` is ignored (at-least-once delivery): the first label of
    a transaction wins. Call ``features`` for an event first, then
    ``observe_transaction`` for it, so the pair count excludes the event itself.
    """

    __slots__ = (
        "_ids",
        "_merchants",
        "_pair_frauds",
        "_pair_txs",
        "_pending",
        "_run_gap",
        "_seq",
        "_users",
    )

    def __init__(
        self,
        *,
        run_gap_ms: int = DEFAULT_RUN_GAP_MS,
        dedupe_ttl_ms: int = 90 * DAY_MS,
        dedupe_max_size: int = 5_000_000,
    ) -> None:
        if run_gap_ms < 0:
            raise FeatureInputError(f"run_gap_ms must be >= 0, got {run_gap_ms}")
        self._run_gap = run_gap_ms
        self._ids = RecentIds(dedupe_ttl_ms, dedupe_max_size)
        self._pending: list[tuple[int, int, str, str, int, int, float]] = []
        self._seq = 0
        self._merchants: dict[str, _MerchantLabels] = {}
        self._users: dict[str, _UserLabels] = {}
        self._pair_frauds: dict[tuple[str, str], int] = {}
        self._pair_txs: dict[tuple[str, str], int] = {}

    def observe_label(
        self,
        tx_id: str,
        user_id: str,
        merchant_id: str,
        event_ms: int,
        label: int | bool,
        known_at_ms: int,
        amount: float = math.nan,
    ) -> None:
        """Record that transaction ``tx_id`` (of ``event_ms``) is fraud (1) or legit (0).

        The label influences no query with ``at_ms <= known_at_ms``. ``amount`` (the
        transaction's) feeds the customer's known-legit spending.
        """
        if self._ids.seen(tx_id, known_at_ms):
            return
        self._seq += 1
        fraud = 1 if label else 0
        record = (known_at_ms, self._seq, user_id, merchant_id, event_ms, fraud, amount)
        heapq.heappush(self._pending, record)

    def observe_transaction(self, user_id: str, merchant_id: str) -> None:
        """Count a transaction of the pair (labelled or not) for later events' pair count."""
        key = (user_id, merchant_id)
        self._pair_txs[key] = self._pair_txs.get(key, 0) + 1

    def features(
        self, user_id: str, merchant_id: str, at_ms: int, amount: float = math.nan
    ) -> list[float]:
        """The ``LABEL_FEATURES`` values of an event (of ``amount``) of a customer at a merchant."""
        self._apply_known(at_ms)
        out: list[float] = []
        self._merchants.get(merchant_id, _NO_MERCHANT).values(at_ms, out)
        self._users.get(user_id, _NO_USER).values(at_ms, amount, out)
        pair = (user_id, merchant_id)
        out.append(float(self._pair_txs.get(pair, 0)))
        out.append(float(self._pair_frauds.get(pair, 0)))
        return out

    def _apply_known(self, at_ms: int) -> None:
        pending = self._pending
        while pending and pending[0][0] < at_ms:
            known_at, _, user, merchant, event_ms, fraud, amount = heapq.heappop(pending)
            state = self._merchants.get(merchant)
            if state is None:
                state = self._merchants[merchant] = _MerchantLabels()
            state.apply(known_at, event_ms, fraud, self._run_gap)
            customer = self._users.get(user)
            if customer is None:
                customer = self._users[user] = _UserLabels()
            customer.apply(event_ms, fraud, amount)
            if fraud:
                pair = (user, merchant)
                self._pair_frauds[pair] = self._pair_frauds.get(pair, 0) + 1


def label_features_for_frame(
    frame: pd.DataFrame,
    label_delay_ms: int = DEFAULT_LABEL_DELAY_MS,
    *,
    run_gap_ms: int = DEFAULT_RUN_GAP_MS,
) -> NDArray[np.float64]:
    """``LABEL_FEATURES`` of every row of a labelled history frame, point-in-time.

    Columns: ``tx_id``, ``user_id``, ``merchant_id``, ``event_time`` (tz-aware),
    ``label`` (1/0, True/False or "fraud"/"legit"; missing = never labelled) and
    optionally ``amount`` (decimal strings or numbers; without it the amount ratio is
    NaN). Each row's label becomes known ``label_delay_ms`` after its event time; rows
    are in arrival order (``pair_prior_transactions`` counts earlier rows). The values
    equal what :class:`KnownLabels` returns when every label is observed up front and
    the rows are replayed in order; a repeated ``tx_id`` gets its first occurrence's row.
    """
    if label_delay_ms < 0 or run_gap_ms < 0:
        raise FeatureInputError(
            f"label_delay_ms and run_gap_ms must be >= 0, got {label_delay_ms}, {run_gap_ms}"
        )
    return frame_label_features(
        frame,
        label_delay_ms=label_delay_ms,
        run_gap_ms=run_gap_ms,
        window_widths_ms=_WIDTHS,
        width=len(LABEL_FEATURES),
    )
