"""The handbook's evaluation protocol: its time windows, its test set and its CP@k.

Le Borgne et al. evaluate a model trained on one week of transactions on the week that
starts after a further week of *label delay* (the training labels are all known by
then), and they drop from each test day the customers whose fraud was already known:
an investigator would not be shown a card that is blocked anyway, and a model that
"finds" them would look better than it is. Card Precision@k then ranks customers per
day by their highest score and, within the test week, leaves out customers already
caught on an earlier day (``remove_detected_compromised_cards=True`` in the handbook's
``card_precision_top_k``). Reproducing those rules exactly is what makes our numbers
comparable with the published ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from models.exceptions import EvaluationError
from schemas._types import epoch_ms

__all__ = [
    "HANDBOOK_TRAIN_START",
    "CardPrecision",
    "ProtocolWindows",
    "handbook_card_precision",
    "handbook_test_mask",
    "prequential_windows",
]

#: Chapter 3's training start: train 07-25..07-31, delay 08-01..08-07, test 08-08..08-14.
HANDBOOK_TRAIN_START = datetime(2018, 7, 25, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ProtocolWindows:
    """Train ``[train_start, train_end)``, delay, then test ``[test_start, test_end)``.

    Times are UTC; days are UTC calendar days (the handbook's ``TX_TIME_DAYS``), so
    ``train_start`` must be a UTC midnight.
    """

    train_start: datetime
    train_days: int = 7
    delay_days: int = 7
    test_days: int = 7

    def __post_init__(self) -> None:
        start = self.train_start
        if start.tzinfo is None or start.utcoffset() != timedelta(0):
            raise EvaluationError(f"train_start must be a UTC time, got {start!r}")
        if (start.hour, start.minute, start.second, start.microsecond) != (0, 0, 0, 0):
            raise EvaluationError(f"train_start must be a UTC midnight, got {start.isoformat()}")
        if min(self.train_days, self.test_days) < 1 or self.delay_days < 0:
            raise EvaluationError(f"window lengths out of range: {self}")

    @property
    def train_end(self) -> datetime:
        """First instant after the training window (= start of the delay window)."""
        return self.train_start + timedelta(days=self.train_days)

    @property
    def test_start(self) -> datetime:
        """First test instant: every training label is known by then."""
        return self.train_end + timedelta(days=self.delay_days)

    @property
    def test_end(self) -> datetime:
        """First instant after the test window."""
        return self.test_start + timedelta(days=self.test_days)

    @property
    def label_delay(self) -> timedelta:
        """The delay after which a transaction's label is known."""
        return timedelta(days=self.delay_days)

    def shifted(self, days: int) -> ProtocolWindows:
        """The same protocol ``days`` later (negative: earlier)."""
        return ProtocolWindows(
            self.train_start + timedelta(days=days),
            self.train_days,
            self.delay_days,
            self.test_days,
        )

    def describe(self) -> dict[str, str]:
        """Inclusive calendar dates of each window, for reports."""
        last = timedelta(days=1)
        return {
            "train": f"{self.train_start:%Y-%m-%d}..{self.train_end - last:%Y-%m-%d}",
            "delay": f"{self.train_end:%Y-%m-%d}..{self.test_start - last:%Y-%m-%d}",
            "test": f"{self.test_start:%Y-%m-%d}..{self.test_end - last:%Y-%m-%d}",
        }


def prequential_windows(
    latest: ProtocolWindows, folds: int, step_days: int = 7
) -> list[ProtocolWindows]:
    """Fold 0 is ``latest``; fold ``i`` moves every window ``i * step_days`` back.

    The handbook's ``prequentialSplit``: each fold trains on its own week and is tested
    on the week after its own delay, so the folds measure week-to-week variation.
    """
    if folds < 1 or step_days < 1:
        raise EvaluationError(f"need folds >= 1 and step_days >= 1, got {folds}, {step_days}")
    return [latest.shifted(-fold * step_days) for fold in range(folds)]


def handbook_test_mask(
    event_ms: NDArray[np.int64],
    user_ids: NDArray[Any],
    labels: NDArray[np.integer],
    windows: ProtocolWindows,
) -> NDArray[np.bool_]:
    """Rows of the test window, less customers whose fraud was known before their day.

    A customer is left out of test day ``D`` if they have a fraud with event time in
    ``[train_start, D - delay)``: a fraud of the training week or of a delay day whose
    label arrived before ``D`` began (the handbook's ``get_train_test_set``; it looks no
    further back than the training start).
    """
    test_start, test_end = epoch_ms(windows.test_start), epoch_ms(windows.test_end)
    in_test = (event_ms >= test_start) & (event_ms < test_end)
    frauds = (labels == 1) & (event_ms >= epoch_ms(windows.train_start))
    fraud_ms, fraud_users = event_ms[frauds], user_ids[frauds]
    keep = in_test.copy()
    delay_ms = windows.delay_days * _DAY_MS
    for day in range(windows.test_days):
        day_start = test_start + day * _DAY_MS
        rows = in_test & (event_ms >= day_start) & (event_ms < day_start + _DAY_MS)
        known = pd.unique(fraud_users[fraud_ms < day_start - delay_ms])
        keep[rows] = ~np.isin(user_ids[rows], known)
    return keep


@dataclass(frozen=True, slots=True)
class CardPrecision:
    """CP@k averaged over days, each day's value, and each day's compromised customers."""

    mean: float
    per_day: tuple[float, ...]
    compromised_per_day: tuple[int, ...]


def handbook_card_precision(
    scores: NDArray[np.floating],
    labels: NDArray[np.integer],
    user_ids: Sequence[Any] | NDArray[Any],
    days: NDArray[np.datetime64],
    k: int = 100,
    *,
    remove_detected: bool = True,
) -> CardPrecision:
    """Card Precision@k as the handbook's ``card_precision_top_k`` computes it.

    Per day (in ascending order): each customer's highest score and whether any of their
    transactions that day is fraud; precision = compromised customers among the ``k``
    highest / ``k``. With ``remove_detected`` a compromised customer in a day's top ``k``
    is left out of every later day. Ties are broken by customer id (the handbook's sort
    leaves them arbitrary). Without ``remove_detected`` this equals
    :func:`models.evaluation.card_precision_at_k`.
    """
    if k < 1:
        raise EvaluationError(f"k must be at least 1, got {k}")
    frame = pd.DataFrame(
        {
            "score": np.asarray(scores, dtype=np.float64),
            "label": np.asarray(labels),
            "user": np.asarray(user_ids),
            "day": np.asarray(days),
        }
    )
    if frame["score"].isna().any():
        raise EvaluationError("scores contain NaN")
    detected: set[Any] = set()
    per_day: list[float] = []
    compromised: list[int] = []
    for _, rows in frame.groupby("day", sort=True):
        if detected:
            rows = rows[~rows["user"].isin(detected)]
        customers = rows.groupby("user", sort=False).agg(
            score=("score", "max"), label=("label", "max")
        )
        compromised.append(int(customers["label"].sum()))
        ranked = customers.reset_index().sort_values(
            ["score", "user"], ascending=[False, True], kind="stable"
        )
        caught = ranked.head(k)
        hits = caught.loc[caught["label"] == 1, "user"]
        per_day.append(len(hits) / k)
        if remove_detected:
            detected.update(hits.tolist())
    mean = float(np.mean(per_day)) if per_day else float("nan")
    return CardPrecision(mean, tuple(per_day), tuple(compromised))


_DAY_MS = 86_400_000
