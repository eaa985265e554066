"""The validation gate: a retrained model replaces the champion only if it is better.

Rule: the candidate becomes champion if, on the same window, its average precision is
higher than the champion's and its ROC AUC is at most ``max_auc_loss`` (0.01) lower.
Otherwise it becomes the challenger (served in shadow, promotable by hand). The first
model, with no champion to beat, is promoted directly.

Window: the most recent labelled data known at the cut-off, i.e. the labelled rows of
the point-in-time set whose event time is within ``window`` (7 days) of the newest one,
and never earlier than the candidate's validation split. So the candidate is judged
only on rows it was not fitted on, and both models see exactly the same rows, through
the same feature code, scored by their served ONNX files. The champion may have been
trained on some of those rows (a retrain on little new data); that favours the
champion, which is the safe side for a gate.

AP decides because BLOCK and REVIEW act on the top of the ranking, which AP rewards;
the AUC guard stops a model that wins the top by ranking the rest much worse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from models.evaluation import evaluate
from models.exceptions import TrainingError
from models.manifest import EvaluationMetrics, GateRecord, TimeWindow, read_manifest
from models.pit import PointInTimeSet
from operators.scoring import EnsembleScorer

__all__ = ["GatePolicy", "decide", "gate_window", "run_gate"]

Verdict = Literal["champion", "challenger"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TOLERANCE = 1e-12


@dataclass(frozen=True, slots=True)
class GatePolicy:
    """How much recent data judges a candidate, and how much AUC it may give up."""

    window: timedelta = timedelta(days=7)
    max_auc_loss: float = 0.01

    def __post_init__(self) -> None:
        if self.window <= timedelta(0) or not 0.0 <= self.max_auc_loss <= 1.0:
            raise TrainingError(f"gate policy out of range: {self}")


def gate_window(
    dataset: PointInTimeSet, validation_from: datetime, window: timedelta
) -> NDArray[np.bool_]:
    """Rows of ``dataset`` the gate scores: see the module doc."""
    times = dataset.training.event_times
    newest = times.max()
    earliest = max(
        newest - np.timedelta64(int(window.total_seconds() * 1000), "ms"),
        np.datetime64(validation_from.astimezone(UTC).replace(tzinfo=None), "ms"),
    )
    mask: NDArray[np.bool_] = times >= earliest
    return mask


def decide(
    candidate: EvaluationMetrics,
    champion: EvaluationMetrics | None,
    *,
    max_auc_loss: float,
) -> tuple[Verdict, str]:
    """The gate's rule on two models' metrics on the same window, and why, in words."""
    if champion is None:
        return "champion", "first model: there is no champion to beat"
    new_ap, new_auc, old_ap, old_auc = candidate.ap, candidate.auc, champion.ap, champion.auc
    if new_ap is None or new_auc is None or old_ap is None or old_auc is None:
        return "challenger", "the window lacks fraud or legit rows: no comparison possible"
    ap_gain = new_ap - old_ap
    auc_change = new_auc - old_auc
    if ap_gain <= 0.0:
        return "challenger", f"AP {new_ap:.4f} does not beat the champion's {old_ap:.4f}"
    if auc_change < -max_auc_loss - _TOLERANCE:
        return "challenger", (
            f"AP gains {ap_gain:+.4f} but AUC drops {auc_change:+.4f} "
            f"(more than the allowed {max_auc_loss:.4f})"
        )
    return "champion", (
        f"AP {new_ap:.4f} beats {old_ap:.4f} ({ap_gain:+.4f}), "
        f"AUC change {auc_change:+.4f} within -{max_auc_loss:.4f}"
    )


def run_gate(
    dataset: PointInTimeSet,
    candidate_dir: Path,
    champion_dir: Path | None,
    policy: GatePolicy | None = None,
) -> GateRecord:
    """Score candidate and champion on the gate window and decide the candidate's role.

    Both model folders are loaded through :meth:`EnsembleScorer.load`, so a champion
    whose files fail their sha256 check raises
    :class:`~models.exceptions.ModelIntegrityError` instead of being compared.
    """
    policy = policy or GatePolicy()
    candidate = EnsembleScorer.load(candidate_dir)
    rows = gate_window(dataset, candidate.manifest.validation_window.from_, policy.window)
    if not rows.any():
        raise TrainingError("the gate window holds no labelled rows")
    training = dataset.training
    features, labels = training.features[rows], training.labels[rows]
    users, times = dataset.user_ids[rows], training.event_times[rows]

    def metrics(model: EnsembleScorer) -> EvaluationMetrics:
        return evaluate(model.score(features).scores, labels, users, times, model.thresholds)

    candidate_metrics = metrics(candidate)
    champion_version: str | None = None
    champion_metrics: EvaluationMetrics | None = None
    reason_prefix = ""
    if champion_dir is not None:
        champion_manifest = read_manifest(champion_dir)
        champion_version = champion_manifest.version
        if champion_manifest.feature_names == candidate.feature_names:
            champion_metrics = metrics(EnsembleScorer.load(champion_dir))
        else:
            reason_prefix = "the champion uses another feature vector and cannot be scored; "
    if champion_dir is not None and champion_metrics is None:
        verdict: Verdict = "champion"
        reason = reason_prefix + "the candidate replaces it"
    else:
        verdict, reason = decide(
            candidate_metrics, champion_metrics, max_auc_loss=policy.max_auc_loss
        )
    return GateRecord(
        window=TimeWindow.model_validate({"from": _utc(times.min()), "to": _utc(times.max())}),
        rows=int(labels.size),
        frauds=int(labels.sum()),
        champion_version=champion_version,
        champion=champion_metrics,
        candidate=candidate_metrics,
        max_auc_loss=policy.max_auc_loss,
        verdict=verdict,
        reason=reason,
        decided_at=datetime.now(UTC).replace(microsecond=0),
    )


def _utc(value: np.datetime64) -> datetime:
    return _EPOCH + timedelta(milliseconds=int(value.astype("datetime64[ms]").astype(np.int64)))
