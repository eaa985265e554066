"""``train_ensemble``: from a feature matrix to a published, hash-pinned model directory.

Split: rows whose event time is in the latest ``validation_share`` (20 %) of the data
form the validation set; everything earlier trains. Splitting by time, not at random,
mirrors serving (the model always scores the future) and keeps bursts of one fraud
episode from leaking across the split.

The final members are the ones fitted on the training part, not refits on all rows: the
weights, thresholds and metrics in the manifest were measured on exactly the files that
are served. The newest 20 % of history is the price; the weekly retrain moves the window.

Every member is exported to ONNX and its ONNX scores on validation are checked against
the native model (max abs difference <= :data:`PARITY_TOLERANCE`) before anything is
written; weights and thresholds are then chosen on the ONNX scores.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydantic import ValidationError

from models.ensemble._members import MEMBERS, EnsembleMember
from models.ensemble._selection import (
    ThresholdPolicy,
    choose_thresholds,
    choose_weights,
    score_metrics,
    weighted_mean,
)
from models.exceptions import TrainingError
from models.manifest import (
    MANIFEST_FILENAME,
    PLAIN_NAME,
    ExplainerEntry,
    Manifest,
    MemberEntry,
    TimeWindow,
    ValidationMetrics,
    sha256_bytes,
    write_atomically,
    write_manifest,
)
from operators.exceptions import ScoringError
from operators.scoring import OnnxMember

__all__ = ["DEFAULT_MEMBERS", "PARITY_TOLERANCE", "train_ensemble"]

DEFAULT_MEMBERS: tuple[str, ...] = ("xgboost", "logreg")
#: Largest |ONNX - native| P(fraud) accepted on validation rows before refusing to publish.
PARITY_TOLERANCE = 1e-5
EXPLAINER_FILE = "explainer.onnx"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def train_ensemble(
    features: NDArray[np.floating],
    labels: NDArray[np.integer] | NDArray[np.bool_],
    event_times: NDArray[np.datetime64] | NDArray[np.integer],
    feature_names: Sequence[str],
    out_dir: Path | str,
    version: str | None = None,
    *,
    members: Sequence[str | EnsembleMember] = DEFAULT_MEMBERS,
    validation_share: float = 0.2,
    threshold_policy: ThresholdPolicy | None = None,
    parent_version: str | None = None,
    seed: int = 0,
    overwrite: bool = False,
    on_stage: Callable[[str], None] | None = None,
) -> Manifest:
    """Train, export, validate and publish an ensemble; return its manifest.

    ``features`` is ``[n, len(feature_names)]`` (NaN = missing), ``labels`` 0/1 (1 =
    fraud), ``event_times`` datetime64 or integer epoch milliseconds (UTC). The directory
    gets one ``<member>.onnx`` per member, ``explainer.onnx`` and, written last,
    ``manifest.json``; an existing manifest is only replaced with ``overwrite=True``
    (meant for scratch directories: publish every version in a directory of its own).
    ``version`` defaults to ``<UTC time>-<first 8 hex of the files' combined sha256>``.
    ``members`` are registry names (:data:`~models.ensemble.MEMBERS`, default settings)
    or unfitted member objects, e.g. ``XGBoostMember(n_jobs=1)`` on a busy machine.
    ``on_stage`` is told each stage as it starts, for progress displays.
    """
    report = on_stage or (lambda _stage: None)
    matrix, targets, times = _validated(features, labels, event_times, feature_names)
    chosen = _members(members, seed)
    if version is not None and not re.fullmatch(PLAIN_NAME, version):
        raise TrainingError(f"version {version!r} must be one plain name ({PLAIN_NAME})")
    directory = Path(out_dir)
    if (directory / MANIFEST_FILENAME).exists() and not overwrite:
        raise TrainingError(f"{directory} already holds a published model (overwrite=False)")

    report("split by event time")
    validation = _validation_mask(times, validation_share)
    train_x, train_y = matrix[~validation], targets[~validation]
    valid_x, valid_y = matrix[validation], targets[validation]
    if len(np.unique(train_y)) < 2:
        raise TrainingError("the training part needs both fraud and legit rows")

    files: dict[str, bytes] = {}
    member_scores: dict[str, NDArray[np.float32]] = {}
    explainer: tuple[str, bytes] | None = None
    for member in chosen:
        name = member.name
        report(f"fit {name} on {len(train_y)} rows")
        member.fit(train_x, train_y)
        report(f"export {name} to ONNX")
        files[f"{name}.onnx"], member_scores[name] = _export_checked(member, valid_x)
        explainer_model = member.explainer_onnx() if explainer is None else None
        if explainer_model is not None:
            explainer = (name, explainer_model.SerializeToString())

    report("choose weights and thresholds on validation")
    weights = choose_weights(member_scores, valid_y)
    combined = weighted_mean(member_scores, weights)
    ensemble_metrics = score_metrics(combined, valid_y)
    metrics = ValidationMetrics(
        auc=ensemble_metrics.auc,
        ap=ensemble_metrics.ap,
        members={name: score_metrics(scores, valid_y) for name, scores in member_scores.items()},
    )
    if explainer is not None:
        files[EXPLAINER_FILE] = explainer[1]
    digests = {file: sha256_bytes(data) for file, data in files.items()}
    # Full precision: the registry orders versions by it, and two may be trained in a second.
    created_at = datetime.now(UTC)
    if version is None:
        combined_digest = sha256_bytes("".join(sorted(digests.values())).encode("ascii"))
        version = f"{created_at:%Y%m%dT%H%M%SZ}-{combined_digest[:8]}"
    try:
        manifest = Manifest(
            version=version,
            created_at=created_at,
            feature_names=tuple(feature_names),
            members=tuple(
                MemberEntry(
                    name=name,
                    file=f"{name}.onnx",
                    sha256=digests[f"{name}.onnx"],
                    weight=weights[name],
                )
                for name in member_scores
            ),
            thresholds=choose_thresholds(combined, valid_y, threshold_policy),
            metrics=metrics,
            training_window=_window(times[~validation]),
            training_rows=int(train_y.size),
            training_frauds=int(train_y.sum()),
            validation_window=_window(times[validation]),
            validation_rows=int(valid_y.size),
            validation_frauds=int(valid_y.sum()),
            parent_version=parent_version,
            code_revision=_code_revision(),
            explainer=None
            if explainer is None
            else ExplainerEntry(
                member=explainer[0], file=EXPLAINER_FILE, sha256=digests[EXPLAINER_FILE]
            ),
        )
    except ValidationError as exc:
        raise TrainingError(f"the trained model does not make a valid manifest: {exc}") from exc

    report(f"write model {version} to {directory}")
    for file, data in files.items():
        write_atomically(directory / file, data)
    write_manifest(manifest, directory)
    return manifest


def _export_checked(
    member: EnsembleMember, valid_x: NDArray[np.float32]
) -> tuple[bytes, NDArray[np.float32]]:
    """ONNX bytes and their validation scores, refused if they drift from the native model."""
    data = member.to_onnx().SerializeToString()
    try:
        onnx_scores = OnnxMember(member.name, data, valid_x.shape[1]).predict_prepared(valid_x)
    except ScoringError as exc:
        raise TrainingError(f"{member.name}: exported model cannot score: {exc}") from exc
    native = member.predict_native(valid_x)
    drift = float(np.max(np.abs(onnx_scores - native))) if native.size else 0.0
    if not drift <= PARITY_TOLERANCE:
        raise TrainingError(
            f"{member.name}: ONNX differs from the native model by {drift:.2e} "
            f"(> {PARITY_TOLERANCE:.0e}) on validation rows; not publishing"
        )
    return data, onnx_scores


def _validated(
    features: NDArray[np.floating],
    labels: NDArray[np.integer] | NDArray[np.bool_],
    event_times: NDArray[np.datetime64] | NDArray[np.integer],
    feature_names: Sequence[str],
) -> tuple[NDArray[np.float32], NDArray[np.int8], NDArray[np.datetime64]]:
    """Float32 features, int8 labels and datetime64[ms] times, or a precise refusal."""
    features = np.asarray(features)
    if features.ndim != 2 or features.dtype.kind not in "fiu" or features.shape[0] < 2:
        raise TrainingError(f"features must be a numeric [n >= 2, f] matrix, got {features.shape}")
    rows, width = features.shape
    if len(feature_names) != width or len(set(feature_names)) != width:
        raise TrainingError(f"{len(feature_names)} feature names for {width} columns (or dupes)")
    labels = np.asarray(labels)
    if labels.shape != (rows,) or not np.isin(labels, (0, 1)).all():
        raise TrainingError(f"labels must be {rows} values in {{0, 1}}, got shape {labels.shape}")
    times = np.asarray(event_times)
    if times.dtype.kind == "M":
        times = times.astype("datetime64[ms]")
    elif times.dtype.kind in "iu":
        times = times.astype(np.int64).astype("datetime64[ms]")
    else:
        raise TrainingError(f"event_times must be datetime64 or epoch ms, got {times.dtype}")
    if times.shape != (rows,) or np.isnat(times).any():
        raise TrainingError(f"event_times must be {rows} non-missing times")
    matrix = np.ascontiguousarray(features, dtype=np.float32)
    return matrix, labels.astype(np.int8), times


def _members(members: Sequence[str | EnsembleMember], seed: int) -> list[EnsembleMember]:
    unknown = [m for m in members if isinstance(m, str) and m not in MEMBERS]
    if unknown:
        raise TrainingError(f"unknown members {unknown}; known: {sorted(MEMBERS)}")
    chosen = [MEMBERS[m](seed) if isinstance(m, str) else m for m in members]
    names = [m.name for m in chosen]
    if not chosen or len(set(names)) != len(names):
        raise TrainingError(f"members must be a non-empty list of distinct members: {names}")
    return chosen


def _validation_mask(times: NDArray[np.datetime64], share: float) -> NDArray[np.bool_]:
    """Rows at or after the time that leaves ``share`` of rows for validation.

    Rows sharing the cut-off timestamp all go to validation, so no instant is split.
    """
    if not 0.0 < share < 1.0:
        raise TrainingError(f"validation_share must be in (0, 1), got {share}")
    ordered = np.sort(times)
    cut = ordered[min(int(len(ordered) * (1.0 - share)), len(ordered) - 1)]
    mask: NDArray[np.bool_] = times >= cut
    if mask.all():
        raise TrainingError("all rows share the validation cut-off time; nothing left to train")
    return mask


def _window(times: NDArray[np.datetime64]) -> TimeWindow:
    def utc(value: np.datetime64) -> datetime:
        return _EPOCH + timedelta(milliseconds=int(value.astype(np.int64)))

    return TimeWindow.model_validate({"from": utc(times.min()), "to": utc(times.max())})


def _code_revision() -> str:
    """``git rev-parse HEAD`` of the source tree, or ``"unknown"`` outside a usable checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    revision = result.stdout.strip()
    if result.returncode != 0 or not re.fullmatch(r"[0-9a-f]{40,64}", revision):
        return "unknown"
    return revision
