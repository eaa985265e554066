"""The numbers behind the backtest report, computed once from ``decisions.parquet``.

A backtest of the handbook file writes over a million decisions; plotting them row by row
would take minutes. Everything the charts need is reduced here with Arrow and NumPy
(columns read selectively, rule lists flattened without Python lists, daily counts by
integer division) so that the renderer only ever sees small arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.typing import NDArray
from sklearn.metrics import roc_curve

__all__ = [
    "KINDS",
    "Caught",
    "Curve",
    "Decisions",
    "ReportContext",
    "RuleStat",
    "caught_from_decisions",
    "curve",
    "daily_mix",
    "is_number",
    "load_decisions",
    "parse_instant_ms",
    "rule_stats_from_decisions",
    "window_mask",
]

KINDS = ("APPROVE", "REVIEW", "BLOCK")
_DAY_MS = 86_400_000
_CURVE_POINTS = 2_000
_COLUMNS = (
    "event_time",
    "label",
    "decision",
    "score",
    "champion_score",
    "online_score",
    "rules_fired",
    "batch_seconds",
)


@dataclass(frozen=True)
class Decisions:
    """Row-aligned columns of ``decisions.parquet`` (absent columns become neutral values).

    ``decision`` holds indices into :data:`KINDS` (-1 for anything else); ``rule_ids`` and
    ``rule_rows`` are the flattened ``rules_fired`` lists: rule ``rule_ids[i]`` fired on
    row ``rule_rows[i]``.
    """

    event_ms: NDArray[np.int64]
    label: NDArray[np.int8]
    decision: NDArray[np.int8]
    scores: dict[str, NDArray[np.float64]]
    rule_ids: NDArray[np.object_]
    rule_rows: NDArray[np.int64]
    batch_seconds: NDArray[np.float64]
    has_labels: bool
    has_rules: bool

    @property
    def rows(self) -> int:
        """Number of decisions."""
        return len(self.event_ms)


@dataclass(frozen=True)
class RuleStat:
    """Hits and precision of one rule, from the summary or recomputed from the decisions."""

    rule_id: str
    action: str | None
    hits: int
    fraud_hits: int | None
    precision: float | None


@dataclass(frozen=True)
class Curve:
    """ROC and precision-recall points of one score column, thinned for plotting."""

    name: str
    fpr: NDArray[np.float64]
    tpr: NDArray[np.float64]
    recall: NDArray[np.float64]
    precision: NDArray[np.float64]
    auc: float
    ap: float


@dataclass(frozen=True)
class Caught:
    """Fraud rows split by what flagged them (rules, the model, both, or nothing)."""

    rules_only: int
    model_only: int
    both: int
    missed: int

    @property
    def total(self) -> int:
        """All fraud rows counted."""
        return self.rules_only + self.model_only + self.both + self.missed


@dataclass(frozen=True)
class ReportContext:
    """What every section reads: the summary, the decisions and the evaluation window."""

    summary: dict[str, Any]
    decisions: Decisions | None
    in_window: NDArray[np.bool_] | None
    window: str

    def part(self, key: str) -> dict[str, Any]:
        """A mapping of the summary, empty if absent or malformed."""
        value = self.summary.get(key)
        return value if isinstance(value, dict) else {}

    def records(self, key: str) -> list[dict[str, Any]]:
        """A list of objects of the summary (non-objects dropped), empty if absent."""
        value = self.summary.get(key)
        return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def is_number(value: Any) -> TypeGuard[int | float]:
    """A JSON number (not a boolean, not null)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_instant_ms(text: Any, *, end_of_day: bool = False) -> int | None:
    """Epoch milliseconds (UTC) of an ISO 8601 string, or ``None`` if it is not one.

    A naive instant is taken as UTC. With ``end_of_day``, a bare date (``2018-08-14``)
    means the end of that day, so that an inclusive ``--eval-end`` keeps its last day.
    """
    if not isinstance(text, str) or not text:
        return None
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, OverflowError):
        return None
    if pd.isna(stamp):
        return None
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    millis = int(stamp.value // 1_000_000)
    if end_of_day and len(text.strip()) == 10:
        millis += _DAY_MS
    return millis


def load_decisions(path: Path) -> Decisions | None:
    """Read the columns the report needs, or ``None`` if there is no decisions file."""
    if not path.is_file():
        return None
    names = set(pq.read_schema(path).names)
    table = pq.read_table(path, columns=[name for name in _COLUMNS if name in names])
    rows = table.num_rows
    event_ms = _int_column(table, "event_time", rows)
    label = (
        _int_column(table, "label", rows, fill=-1).astype(np.int8)
        if "label" in names
        else np.full(rows, -1, dtype=np.int8)
    )
    scores = {
        name: _float_column(table, name, rows)
        for name in ("score", "champion_score", "online_score")
        if name in names
    }
    rule_ids, rule_rows = _flatten_rules(table, rows)
    return Decisions(
        event_ms=event_ms,
        label=label,
        decision=_decision_codes(table, rows),
        scores=scores,
        rule_ids=rule_ids,
        rule_rows=rule_rows,
        batch_seconds=_float_column(table, "batch_seconds", rows),
        has_labels=bool((label >= 0).any()),
        has_rules="rules_fired" in names,
    )


def window_mask(
    decisions: Decisions, start_ms: int | None, end_ms: int | None
) -> NDArray[np.bool_]:
    """Rows whose event time lies in ``[start, end)`` (an open side keeps everything)."""
    mask = np.ones(decisions.rows, dtype=np.bool_)
    if start_ms is not None:
        mask &= decisions.event_ms >= start_ms
    if end_ms is not None:
        mask &= decisions.event_ms < end_ms
    return mask


def daily_mix(decisions: Decisions) -> tuple[NDArray[np.datetime64], NDArray[np.int64]]:
    """UTC days present and, per day, the count of each decision kind (shape ``3 x days``)."""
    known = decisions.decision >= 0
    days = decisions.event_ms[known] // _DAY_MS
    if days.size == 0:
        return np.array([], dtype="datetime64[D]"), np.zeros((len(KINDS), 0), dtype=np.int64)
    first = int(days.min())
    span = int(days.max()) - first + 1
    flat = (days - first) * len(KINDS) + decisions.decision[known]
    counts = np.bincount(flat, minlength=span * len(KINDS)).reshape(span, len(KINDS)).T
    day_axis = np.arange(first, first + span).astype("datetime64[D]")
    present = counts.sum(axis=0) > 0
    return day_axis[present], counts[:, present].astype(np.int64)


def rule_stats_from_decisions(decisions: Decisions) -> list[RuleStat]:
    """Hits per rule over every decision; precision among the hits whose label is known."""
    if decisions.rule_ids.size == 0:
        return []
    ids, inverse = np.unique(decisions.rule_ids.astype(str), return_inverse=True)
    hits = np.bincount(inverse, minlength=len(ids))
    labels = decisions.label[decisions.rule_rows]
    known = np.bincount(inverse, weights=(labels >= 0), minlength=len(ids))
    fraud = np.bincount(inverse, weights=(labels == 1), minlength=len(ids))
    stats = [
        RuleStat(
            rule_id=str(rule_id),
            action=None,
            hits=int(hits[index]),
            fraud_hits=int(fraud[index]) if decisions.has_labels else None,
            precision=float(fraud[index] / known[index]) if known[index] else None,
        )
        for index, rule_id in enumerate(ids)
    ]
    return sorted(stats, key=lambda stat: (-stat.hits, stat.rule_id))


def caught_from_decisions(
    decisions: Decisions, in_window: NDArray[np.bool_], allow_rules: set[str]
) -> tuple[Caught, float | None] | None:
    """Split the window's fraud rows by what flagged them, when the summary does not say.

    A rule "caught" a fraud when a non-ALLOW rule fired on it. The model "caught" it when
    its score reached the review threshold, which the decisions do not record: it is
    taken as the lowest score of a REVIEW/BLOCK decision on which no rule fired (the
    model must have made those alone). Returns ``None`` without labels or scores, else the
    split and the inferred threshold (``None`` if the model never flagged anything alone).
    """
    score = decisions.scores.get("score")
    fraud = in_window & (decisions.label == 1)
    if score is None or not fraud.any():
        return None
    rule_hit = np.zeros(decisions.rows, dtype=np.bool_)
    if decisions.rule_ids.size:
        counted = ~np.isin(decisions.rule_ids.astype(str), list(allow_rules))
        rule_hit[decisions.rule_rows[counted]] = True
    flagged_alone = (decisions.decision >= 1) & ~rule_hit & ~np.isnan(score)
    threshold = float(score[flagged_alone].min()) if flagged_alone.any() else None
    with np.errstate(invalid="ignore"):
        model_hit = score >= threshold if threshold is not None else np.zeros_like(rule_hit)
    return (
        Caught(
            rules_only=int((fraud & rule_hit & ~model_hit).sum()),
            model_only=int((fraud & model_hit & ~rule_hit).sum()),
            both=int((fraud & rule_hit & model_hit).sum()),
            missed=int((fraud & ~rule_hit & ~model_hit).sum()),
        ),
        threshold,
    )


def curve(name: str, scores: NDArray[np.float64], labels: NDArray[np.int8]) -> Curve | None:
    """ROC/PR curve, AUC and AP of one score column; ``None`` if one class is absent.

    Rows without a score (NaN) or a label (-1) are ignored. Everything comes from a single
    :func:`sklearn.metrics.roc_curve` (one sort of the column, which matters at a million
    rows): precision is ``tp / (tp + fp)`` at each threshold, AUC the trapezoid under the
    ROC points and AP the step sum ``sum((R_n - R_{n-1}) P_n)``, as scikit-learn defines
    ``average_precision_score``.
    """
    usable = ~np.isnan(scores) & (labels >= 0)
    truth = labels[usable] == 1
    positives = int(truth.sum())
    negatives = int(truth.size - positives)
    if positives == 0 or negatives == 0:
        return None
    fpr, tpr, _ = roc_curve(truth, scores[usable], drop_intermediate=False)
    true_positives, false_positives = tpr[1:] * positives, fpr[1:] * negatives
    precision = true_positives / (true_positives + false_positives)
    return Curve(
        name=name,
        fpr=_thin(fpr),
        tpr=_thin(tpr),
        recall=_thin(tpr[1:]),
        precision=_thin(precision),
        auc=float(np.trapezoid(tpr, fpr)),
        ap=float(np.sum(np.diff(tpr) * precision)),
    )


def _thin(points: NDArray[np.float64]) -> NDArray[np.float64]:
    """At most ``_CURVE_POINTS`` evenly spaced points, always keeping both ends."""
    if points.size <= _CURVE_POINTS:
        return np.asarray(points, dtype=np.float64)
    keep = np.unique(np.linspace(0, points.size - 1, _CURVE_POINTS).round().astype(np.int64))
    return np.asarray(points[keep], dtype=np.float64)


def _int_column(table: pa.Table, name: str, rows: int, fill: int = 0) -> NDArray[np.int64]:
    if name not in table.column_names:
        return np.full(rows, fill, dtype=np.int64)
    column = table.column(name)
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    return np.asarray(column.cast(pa.int64()).fill_null(fill).to_numpy(), dtype=np.int64)


def _float_column(table: pa.Table, name: str, rows: int) -> NDArray[np.float64]:
    if name not in table.column_names:
        return np.full(rows, np.nan)
    column = table.column(name).cast(pa.float64()).fill_null(np.nan)
    return np.asarray(column.to_numpy(), dtype=np.float64)


def _decision_codes(table: pa.Table, rows: int) -> NDArray[np.int8]:
    if "decision" not in table.column_names:
        return np.full(rows, -1, dtype=np.int8)
    column = table.column("decision").cast(pa.string())
    codes = pc.index_in(column, value_set=pa.array(KINDS)).fill_null(-1)
    return np.asarray(codes.to_numpy(), dtype=np.int8)


def _flatten_rules(table: pa.Table, rows: int) -> tuple[NDArray[np.object_], NDArray[np.int64]]:
    empty = (np.array([], dtype=object), np.array([], dtype=np.int64))
    if "rules_fired" not in table.column_names or rows == 0:
        return empty
    column = table.column("rules_fired").combine_chunks()
    if not pa.types.is_list(column.type) and not pa.types.is_large_list(column.type):
        return empty
    values = pc.list_flatten(column)
    parents = pc.list_parent_indices(column)
    valid = pc.is_valid(values)
    values = values.filter(valid).cast(pa.string())
    parents = parents.filter(valid)
    return (
        np.asarray(values.to_numpy(zero_copy_only=False), dtype=object),
        np.asarray(parents.to_numpy(), dtype=np.int64),
    )
