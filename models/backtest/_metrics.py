"""The backtest's numbers under the handbook's evaluation rules, week by week and overall.

Each reported week is judged as the handbook judges its test week
(:mod:`models._handbook_protocol`): on test day ``D`` of a week starting at ``W``, a
customer with a fraud of event time in ``[W - delay - 7d, D - delay)`` (a fraud whose
label was visible before ``D``, looking back to the handbook's training start) is left
out, for every metric; Card Precision@100 is
:func:`models._handbook_protocol.handbook_card_precision` on the week (customers caught
on an earlier day of the week are left out of later days). The overall figures pool the
weeks: AUC and AP over all their rows, CP@100 the mean over all their days. With whole-day
delays and midnight weeks this is exactly :func:`handbook_test_mask`.

Only decisions with a score count for AUC, AP and CP@100 (rules-only decisions have
none); BLOCK and REVIEW precision and recall count every decision of the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from models._handbook_protocol import handbook_card_precision
from models.backtest._config import iso_ms
from models.ensemble import score_metrics

__all__ = ["Window", "evaluate_window", "protocol_mask", "week_starts"]

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
_BLOCK, _REVIEW = 2, 1


@dataclass(frozen=True, slots=True)
class Window:
    """What the evaluation reads, row-aligned (event-time order)."""

    event_ms: NDArray[np.int64]
    labels: NDArray[np.int8]
    users: NDArray[np.int64]
    scores: NDArray[np.float64]
    codes: NDArray[np.int8]
    versions: NDArray[np.object_]


def week_starts(start_ms: int, end_ms: int) -> list[int]:
    """Week starts from ``start_ms`` every 7 days while before ``end_ms``."""
    return list(range(start_ms, end_ms, WEEK_MS))


def protocol_mask(
    event_ms: NDArray[np.int64],
    users: NDArray[np.int64],
    labels: NDArray[np.int8],
    week_start: int,
    week_end: int,
    delay_ms: int,
) -> NDArray[np.bool_]:
    """Rows of ``[week_start, week_end)``, less customers whose fraud was known before their day.

    See the module doc; days are UTC calendar days (a week need not start at midnight).
    """
    in_week = (event_ms >= week_start) & (event_ms < week_end)
    keep = in_week.copy()
    lookback = week_start - delay_ms - WEEK_MS
    frauds = (labels == 1) & (event_ms >= lookback) & (event_ms < week_end)
    fraud_ms, fraud_users = event_ms[frauds], users[frauds]
    first_day = week_start // DAY_MS * DAY_MS
    for day_start in range(first_day, week_end, DAY_MS):
        rows = in_week & (event_ms >= day_start) & (event_ms < day_start + DAY_MS)
        if not rows.any():
            continue
        known = np.unique(fraud_users[fraud_ms < day_start - delay_ms])
        keep[rows] = ~np.isin(users[rows], known)
    return keep


def evaluate_window(
    data: Window, start_ms: int, end_ms: int, delay_ms: int
) -> tuple[dict[str, Any], list[dict[str, Any]], NDArray[np.bool_]]:
    """The ``eval`` part of the summary, its ``weeks`` and the rows evaluated.

    The window is ``[start_ms, end_ms)``; the rows are the weeks' protocol rows pooled.
    """
    pooled = np.zeros(len(data.event_ms), dtype=np.bool_)
    weeks: list[dict[str, Any]] = []
    days: list[float] = []
    for week in week_starts(start_ms, end_ms):
        stop = min(week + WEEK_MS, end_ms)
        rows = protocol_mask(data.event_ms, data.users, data.labels, week, stop, delay_ms)
        pooled |= rows
        metrics, per_day = _ranking(data, rows)
        days.extend(per_day)
        in_week = (data.event_ms >= week) & (data.event_ms < stop)
        weeks.append(
            {
                "start": iso_ms(week),
                "end": iso_ms(stop),
                **metrics,
                "model_version": _main_version(data.versions[in_week]),
                "rows": int(rows.sum()),
                "frauds": int((data.labels[rows] == 1).sum()),
                "left_out": int((in_week & ~rows).sum()),
            }
        )
    metrics, _ = _ranking(data, pooled, card=False)
    metrics["cp100"] = float(np.mean(days)) if days else None
    in_window = (data.event_ms >= start_ms) & (data.event_ms < end_ms)
    summary = {
        "start": iso_ms(start_ms),
        "end": iso_ms(end_ms),
        **metrics,
        "block": _operating(data, pooled, _BLOCK),
        "review": _operating(data, pooled, _REVIEW),
        "rows": int(pooled.sum()),
        "frauds": int((data.labels[pooled] == 1).sum()),
        "left_out": int((in_window & ~pooled).sum()),
        "scored": int((pooled & ~np.isnan(data.scores)).sum()),
    }
    return summary, weeks, pooled


def _ranking(
    data: Window, rows: NDArray[np.bool_], *, card: bool = True
) -> tuple[dict[str, Any], list[float]]:
    scored = rows & ~np.isnan(data.scores) & (data.labels >= 0)
    empty: dict[str, Any] = {"auc": None, "ap": None, "cp100": None}
    if not scored.any():
        return empty, []
    scores, labels = data.scores[scored], data.labels[scored]
    ranking = score_metrics(scores, labels)
    if not card:
        return {"auc": ranking.auc, "ap": ranking.ap, "cp100": None}, []
    days = (data.event_ms[scored] // DAY_MS).astype("datetime64[D]")
    precision = handbook_card_precision(scores, labels, data.users[scored], days)
    per_day = [value for value in precision.per_day if not math.isnan(value)]
    cp = float(np.mean(per_day)) if per_day else None
    return {"auc": ranking.auc, "ap": ranking.ap, "cp100": cp}, per_day


def _operating(data: Window, rows: NDArray[np.bool_], code: int) -> dict[str, float | None]:
    """Precision of decisions ``code`` (REVIEW or BLOCK) and the share of frauds they got."""
    labelled = rows & (data.labels >= 0)
    acted = labelled & (data.codes == code)
    frauds = labelled & (data.labels == 1)
    hits = int((acted & frauds).sum())
    return {
        "precision": hits / int(acted.sum()) if acted.any() else None,
        "recall": hits / int(frauds.sum()) if frauds.any() else None,
    }


def _main_version(versions: Sequence[Any] | NDArray[np.object_]) -> str | None:
    """The model that decided most of the rows (None: rules only)."""
    present = pd.Series(versions, dtype=object).dropna()
    if present.empty:
        return None
    return str(present.value_counts().index[0])
