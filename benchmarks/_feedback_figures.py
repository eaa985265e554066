"""The figures of the feedback-loop benchmark: buckets by labels applied, rates, AUCs.

Kept apart from the replay (what happened) and the command (how it is shown): every
number in the JSON document is computed here from the per-row outcome of an arm.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from _feedback_replay import ArmResult, Stream

from models.manifest import Distribution
from models.reference import population_stability_index

__all__ = [
    "BUCKET_NAMES",
    "EDGES",
    "bucket_of",
    "bucket_table",
    "online_reach",
    "rank_auc",
    "served_risk",
    "wilson",
]

#: Lower edges of the label-count buckets: [0, 50), [50, 200), [200, 1000), [1000, inf).
EDGES = (0, 50, 200, 1000)
BUCKET_NAMES = ("before 50 labels", "50-199 labels", "200-999 labels", "1,000+ labels")
_Z95 = 1.959964


def wilson(hits: int, total: int) -> tuple[float, float] | None:
    """95 % Wilson interval of a proportion; None without observations."""
    if total == 0:
        return None
    share = hits / total
    scale = 1 + _Z95**2 / total
    centre = (share + _Z95**2 / (2 * total)) / scale
    half = _Z95 * math.sqrt(share * (1 - share) / total + _Z95**2 / (4 * total**2)) / scale
    return max(0.0, centre - half), min(1.0, centre + half)


def bucket_of(labels_seen: np.ndarray) -> np.ndarray:
    """Bucket index of each row from the labels applied when it was decided."""
    return np.searchsorted(np.array(EDGES[1:]), labels_seen, side="right")


def _rate(flagged: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    total = int(mask.sum())
    hits = int((flagged & mask).sum())
    interval = wilson(hits, total)
    return {
        "n": total,
        "flagged": hits,
        "share": hits / total if total else None,
        "ci95": None if interval is None else [round(v, 4) for v in interval],
    }


def rank_auc(scores: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> float | None:
    """P(a positive row outranks a negative one), ties half; None if either side is empty."""
    pos = scores[positive & np.isfinite(scores)]
    neg = scores[negative & np.isfinite(scores)]
    if not pos.size or not neg.size:
        return None
    ranks = pd.Series(np.concatenate((pos, neg))).rank().to_numpy()
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2
    return round(float(u / (pos.size * neg.size)), 4)


def _median(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else None


def online_reach(review: float, weight: float) -> float:
    """The champion score above which the online model alone can lift a row to REVIEW.

    The blend is ``(1 - w) * champion + w * online`` with ``online <= 1``: a row whose
    champion score is below ``(review - w) / (1 - w)`` stays under the review threshold
    whatever the online model says.
    """
    if weight <= 0.0:
        return math.inf
    if weight >= 1.0:
        return -math.inf
    return (review - weight) / (1.0 - weight)


def bucket_table(
    stream: Stream,
    result: ArmResult,
    buckets: np.ndarray,
    pattern: str,
    loop: ArmResult,
    reach: float,
) -> list[dict[str, Any]]:
    """Per bucket: recall on the pattern and on other fraud, the legit review+block share."""
    flagged = result.codes > 0
    is_pattern = stream.pattern == pattern
    other_fraud = stream.fraud & ~is_pattern
    legit = ~stream.fraud
    merchant_known = result.merchant_frauds_known > 0  # its merchant had a known fraud
    start_ms = int(stream.event_ms[0])
    rows = []
    for index, name in enumerate(BUCKET_NAMES):
        inside = buckets == index
        if not inside.any():
            rows.append({"bucket": name, "rows": 0})
            continue
        where = np.flatnonzero(inside)
        first, last = int(where[0]), int(where[-1])
        frauds = is_pattern & inside & stream.fraud
        rows.append(
            {
                "bucket": name,
                "labels_from": EDGES[index],
                "labels_to": EDGES[index + 1] if index + 1 < len(EDGES) else None,
                "rows": int(inside.sum()),
                "stream_days": [
                    round((int(stream.event_ms[first]) - start_ms) / 86_400_000, 2),
                    round((int(stream.event_ms[last]) - start_ms) / 86_400_000, 2),
                ],
                "pattern_labels_applied": [
                    int(loop.pattern_labels_seen[first]),
                    int(loop.pattern_labels_seen[last]),
                ],
                "pattern_recall": _rate(flagged, frauds),
                "other_fraud_recall": _rate(flagged, other_fraud & inside),
                "legit_review_block_share": _rate(flagged, legit & inside),
                "legit_block_share": _rate(result.codes == 2, legit & inside),
                "pattern_recall_merchant_fraud_known": _rate(flagged, frauds & merchant_known),
                "pattern_recall_merchant_fraud_unknown": _rate(flagged, frauds & ~merchant_known),
                "pattern_fraud_median_score": _median(result.scores[frauds]),
                "pattern_fraud_median_champion": _median(result.champion[frauds]),
                "pattern_frauds_within_online_reach": _rate(result.champion >= reach, frauds),
                "pattern_fraud_median_online": _median(result.online[frauds]),
                "legit_median_online": _median(result.online[legit & inside]),
                "pattern_vs_legit_auc": {
                    "decided_score": rank_auc(result.scores, frauds, legit & inside),
                    "champion": rank_auc(result.champion, frauds, legit & inside),
                    "online": rank_auc(result.online, frauds, legit & inside),
                    "merchant_risk": rank_auc(
                        np.nan_to_num(result.merchant_risk, nan=-1.0), frauds, legit & inside
                    ),
                },
                "pattern_fraud_merchant_risk_known": (
                    float(np.isfinite(result.merchant_risk[frauds]).mean())
                    if frauds.any()
                    else None
                ),
            }
        )
    return rows


def served_risk(values: np.ndarray, reference: Distribution | None) -> dict[str, Any]:
    """What the scorer's ``merchant_risk`` looked like, against the champion's reference."""
    known = values[np.isfinite(values)]
    return {
        "null_share": round(float(1 - known.size / values.size), 4),
        "mean_known": round(float(known.mean()), 4) if known.size else None,
        "p50_known": round(float(np.quantile(known, 0.5)), 4) if known.size else None,
        "p90_known": round(float(np.quantile(known, 0.9)), 4) if known.size else None,
        "psi_vs_champion_reference": (
            None if reference is None else round(population_stability_index(reference, values), 3)
        ),
    }
