"""What a run leaves in its report folder: ``decisions.parquet`` and ``summary.json``.

Decisions are gathered batch by batch into row-aligned arrays (rows are in event-time
order and every batch is a contiguous slice), so the million-row Parquet file is built
with Arrow from columns, never row by row. The columns are the ones the report contract
names (see ``models/backtest/__init__.py``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from models.backtest._decide import BatchResult
from models.backtest._history import NO_LABEL, Prepared
from models.manifest import write_atomically
from operators.rules import RuleSet

__all__ = ["Collected", "write_summary"]

KINDS = ("APPROVE", "REVIEW", "BLOCK")
_CAUGHT_BY = ("BLOCK", "REVIEW")


class Collected:
    """Every decision of the run, row-aligned with :class:`Prepared`'s rows."""

    def __init__(self, rows: int, rules: RuleSet) -> None:
        self.codes = np.zeros(rows, dtype=np.int8)
        self.scores = np.full(rows, np.nan)
        self.champion = np.full(rows, np.nan)
        self.online = np.full(rows, np.nan)
        self.versions = np.full(rows, None, dtype=object)
        self.causes = np.full(rows, None, dtype=object)
        self.batch_seconds = np.zeros(rows)
        self.rule_caught = np.zeros(rows, dtype=np.bool_)
        self.model_caught = np.zeros(rows, dtype=np.bool_)
        self.reasons: list[list[str]] = []
        self._rules = rules
        self._active = np.array([not rule.shadow for rule in rules], dtype=np.bool_)
        self._catching = np.array(
            [not rule.shadow and rule.action in _CAUGHT_BY for rule in rules], dtype=np.bool_
        )
        self._hits: list[NDArray[np.bool_]] = []  # rules x rows, per batch
        self.batches: list[dict[str, Any]] = []

    def add(self, lo: int, hi: int, result: BatchResult, seconds: float, start: str) -> None:
        """Store the decisions of rows ``lo:hi`` (one batch) and its timing."""
        self.codes[lo:hi] = result.codes
        self.scores[lo:hi] = result.scores
        self.champion[lo:hi] = result.champion
        self.online[lo:hi] = result.online
        self.versions[lo:hi] = result.model_version
        self.causes[lo:hi] = result.cause
        self.batch_seconds[lo:hi] = seconds / max(hi - lo, 1)
        self.reasons.extend(result.reasons)
        matrix = result.hits.matrix
        if matrix.shape[0] != len(self._active):  # rules could not be evaluated
            matrix = np.zeros((len(self._active), hi - lo), dtype=np.bool_)
        self._hits.append(matrix)
        self.rule_caught[lo:hi] = matrix[self._catching].any(axis=0)
        with np.errstate(invalid="ignore"):
            self.model_caught[lo:hi] = result.scores >= result.review_threshold
        self.batches.append({"start": start, "rows": hi - lo, "seconds": seconds})

    def hit_matrix(self) -> NDArray[np.bool_]:
        """Which rule fired on which row (rules x rows, shadow rules included)."""
        if not self._hits:
            return np.zeros((len(self._active), 0), dtype=np.bool_)
        return np.hstack(self._hits)

    def rule_stats(self, labels: NDArray[np.int8]) -> list[dict[str, Any]]:
        """Per rule: hits over every decision, fraud among the labelled hits, precision."""
        matrix = self.hit_matrix()
        labelled = labels != NO_LABEL
        stats = []
        for index, rule in enumerate(self._rules):
            fired = matrix[index]
            known = int((fired & labelled).sum())
            frauds = int((fired & (labels == 1)).sum())
            stats.append(
                {
                    "id": rule.id,
                    "action": rule.action,
                    "mode": rule.mode,
                    "reason": rule.reason,
                    "hits": int(fired.sum()),
                    "hit_rate": float(fired.mean()) if fired.size else None,
                    "fraud_hits": frauds,
                    "precision": frauds / known if known else None,
                }
            )
        return stats

    def caught(self, rows: NDArray[np.bool_], labels: NDArray[np.int8]) -> dict[str, int]:
        """Fraud rows of ``rows`` by what flagged them: an active BLOCK/REVIEW rule, the model."""
        fraud = rows & (labels == 1)
        rule, model = self.rule_caught, self.model_caught
        return {
            "rules_only": int((fraud & rule & ~model).sum()),
            "model_only": int((fraud & model & ~rule).sum()),
            "both": int((fraud & rule & model).sum()),
            "missed": int((fraud & ~rule & ~model).sum()),
        }

    def write_decisions(self, prepared: Prepared, path: Path) -> None:
        """``decisions.parquet``: one row per decision, the contract's columns."""
        frame = prepared.frame
        rules = np.array([rule.id for rule in self._rules], dtype=object)
        active = self.hit_matrix()[self._active]
        rows, which = np.nonzero(active.T)  # sorted by row, then rule
        offsets = np.zeros(prepared.rows + 1, dtype=np.int32)
        np.cumsum(np.bincount(rows, minlength=prepared.rows), out=offsets[1:])
        fired = pa.ListArray.from_arrays(
            pa.array(offsets), pa.array(rules[self._active][which], type=pa.string())
        )
        labelled = prepared.labels != NO_LABEL
        known = pa.array(prepared.known_ms, type=pa.int64(), mask=~labelled)
        table = pa.table(
            {
                "tx_id": pa.array(frame["tx_id"].to_numpy(dtype=object), type=pa.string()),
                "user_id": pa.array(frame["user_id"].to_numpy(dtype=object), type=pa.string()),
                "merchant_id": pa.array(
                    frame["merchant_id"].to_numpy(dtype=object), type=pa.string()
                ),
                "event_time": pa.array(prepared.event_ms, type=pa.int64()).cast(_TIMESTAMP),
                "amount": pa.array(prepared.amounts, type=pa.float64()),
                "label": pa.array(prepared.labels, type=pa.int8()),
                "label_known_at": known.cast(_TIMESTAMP),
                "decision": pa.array(np.array(KINDS, dtype=object)[self.codes], type=pa.string()),
                "score": pa.array(self.scores, type=pa.float64()),
                "champion_score": pa.array(self.champion, type=pa.float64()),
                "online_score": pa.array(self.online, type=pa.float64()),
                "model_version": pa.array(self.versions, type=pa.string()),
                "rules_fired": fired,
                "reasons": pa.array(self.reasons, type=pa.list_(pa.string())),
                "degraded": pa.array(self.causes != None, type=pa.bool_()),  # noqa: E711
                "degraded_cause": pa.array(self.causes, type=pa.string()),
                "batch_seconds": pa.array(self.batch_seconds, type=pa.float64()),
            }
        )
        pq.write_table(table, path, compression="zstd")


_TIMESTAMP = pa.timestamp("ms", tz="UTC")


def write_summary(summary: dict[str, Any], path: Path) -> None:
    """``summary.json`` with NaN and infinities written as null."""
    write_atomically(path, orjson.dumps(_clean(summary), option=orjson.OPT_INDENT_2) + b"\n")
    path.chmod(0o644)  # a report to share, like decisions.parquet (temp files start 0600)


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
