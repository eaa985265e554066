"""A candidate model from a point-in-time training set, with everything the registry keeps.

:func:`models.ensemble.train_ensemble` fits, exports and validates the ensemble. This
module adds what a lifecycle needs on top, measured on the same validation rows and by
the exported ONNX files themselves (loaded through the serving
:class:`~operators.scoring.EnsembleScorer`, hash check included): Card Precision@100,
precision/recall at the fitted thresholds, the reference distributions for drift checks,
and the cut-off and label delay the data was taken at.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydantic import ValidationError

from models.ensemble import DEFAULT_MEMBERS, EnsembleMember, ThresholdPolicy, train_ensemble
from models.evaluation import evaluate
from models.exceptions import TrainingError
from models.manifest import Manifest, ValidationMetrics, write_manifest
from models.pit import PointInTimeSet
from models.reference import reference_distributions
from operators.features import FEATURE_NAMES
from operators.scoring import EnsembleScorer

__all__ = ["train_candidate", "updated_manifest", "validation_mask"]


def train_candidate(
    dataset: PointInTimeSet,
    out_dir: Path,
    *,
    members: Sequence[str | EnsembleMember] = DEFAULT_MEMBERS,
    threshold_policy: ThresholdPolicy | None = None,
    parent_version: str | None = None,
    version: str | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> Manifest:
    """Train into ``out_dir`` (a fresh folder) and write the enriched manifest there.

    The manifest is written twice in ``out_dir``: by the trainer, then with the extra
    sections. Train into a staging folder that nobody serves from (the registry's, or a
    temporary one) and publish it afterwards.
    """
    report = on_stage or (lambda _stage: None)
    training = dataset.training
    manifest = train_ensemble(
        training.features,
        training.labels,
        training.event_times,
        FEATURE_NAMES,
        out_dir,
        version,
        members=members,
        threshold_policy=threshold_policy,
        parent_version=parent_version,
        on_stage=on_stage,
    )
    report("evaluate the exported model on validation")
    rows = validation_mask(training.event_times, manifest)
    scores = EnsembleScorer.load(out_dir, expected_feature_names=FEATURE_NAMES).score(
        training.features[rows]
    )
    evaluation = evaluate(
        scores.scores,
        training.labels[rows],
        dataset.user_ids[rows],
        training.event_times[rows],
        manifest.thresholds,
    )
    metrics = ValidationMetrics(**evaluation.model_dump(), members=manifest.metrics.members)
    report("reference distributions for drift checks")
    manifest = updated_manifest(
        manifest,
        metrics=metrics,
        training_cutoff=dataset.cutoff.astimezone(UTC),
        label_delay=dataset.label_delay,
        reference=reference_distributions(training.features[rows], FEATURE_NAMES, scores.scores),
    )
    write_manifest(manifest, out_dir)
    return manifest


def validation_mask(event_times: NDArray[np.datetime64], manifest: Manifest) -> NDArray[np.bool_]:
    """Rows of a training set that the trainer held out for validation (by event time)."""
    start = np.datetime64(manifest.validation_window.from_.astimezone(UTC).replace(tzinfo=None))
    mask: NDArray[np.bool_] = np.asarray(event_times) >= start.astype("datetime64[ms]")
    return mask


def updated_manifest(manifest: Manifest, **fields: object) -> Manifest:
    """A copy of ``manifest`` with ``fields`` replaced, validated like a manifest read from disk."""
    try:
        return Manifest.model_validate({**manifest.model_dump(by_alias=True), **fields})
    except ValidationError as exc:
        raise TrainingError(f"model {manifest.version}: invalid manifest update: {exc}") from exc
