"""Retraining on "the offline store plus history": verdicts applied live become examples.

History is replayed point-in-time (:func:`models.pit.point_in_time_dataset`), where a
label counts only once its assumed delay has passed. The offline store is different:
each row *was* labelled (at ``labeled_at``), and carries the vector the live scorer
actually served. So a store row is a training example as it stands, with no delay rule
and no replay: features as scored (no training/serving skew, whatever produced them),
its verdict, its event time and user. A transaction both in history and in the store is
one example, the store's: the verdict an analyst or a chargeback gave and the vector the
model saw win over the export's.

The merged set then goes through :func:`models.retrain.retrain` unchanged: train in a
registry staging folder, gate against the champion on the most recent labelled rows
(store rows included), register, promote, publish. A failed run leaves the registry as
it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from models.ensemble import DEFAULT_MEMBERS, EnsembleMember, ThresholdPolicy
from models.exceptions import TrainingError
from models.gate import GatePolicy
from models.offline_store import FEATURE_PREFIX, read_feedback_examples, read_labelled_history
from models.pit import PointInTimeSet, point_in_time_dataset
from models.registry import ModelRegistry
from models.retrain import RetrainOutcome, retrain
from models.training_set import TrainingSet
from operators.features import FEATURE_NAMES

__all__ = ["feedback_dataset", "retrain_from_feedback", "with_feedback"]

_REQUIRED = ("tx_id", "user_id", "event_time", "label", "labeled_at")


def feedback_dataset(examples: pd.DataFrame, label_delay: timedelta) -> PointInTimeSet:
    """A point-in-time set of the store's rows alone (no history).

    The cut-off is the newest ``labeled_at`` or event time: every verdict used was known
    by then. ``label_delay`` is only recorded (the manifest states it); it filters nothing.
    """
    rows = _store_rows(examples)
    return PointInTimeSet(
        training=TrainingSet(rows.features, rows.labels, rows.event_times),
        user_ids=rows.user_ids,
        cutoff=rows.known_at,
        label_delay=label_delay,
        replayed=0,
        withheld=0,
        tx_ids=rows.tx_ids,
    )


def with_feedback(dataset: PointInTimeSet, examples: pd.DataFrame) -> PointInTimeSet:
    """``dataset`` plus the store's rows (``read_feedback_examples``), one per ``tx_id``.

    A history row whose ``tx_id`` the store has is replaced by the store's row (its
    verdict and served features). Rows are ordered by event time; the cut-off becomes the
    later of the dataset's and the newest store verdict. ``replayed`` and ``withheld``
    still count the history's replay.
    """
    if examples.empty:
        return dataset
    if dataset.tx_ids is None:
        raise TrainingError(
            "the training set has no tx_ids, so store verdicts cannot replace its rows: "
            "build it with models.pit.point_in_time_dataset"
        )
    rows = _store_rows(examples)
    keep = ~pd.Series(dataset.tx_ids).isin(set(rows.tx_ids.tolist())).to_numpy()
    training = dataset.training
    times = np.concatenate([training.event_times[keep], rows.event_times])
    order = np.argsort(times, kind="stable")
    merged = TrainingSet(
        features=np.vstack([training.features[keep], rows.features])[order],
        labels=np.concatenate([training.labels[keep], rows.labels])[order],
        event_times=times[order],
    )
    return PointInTimeSet(
        training=merged,
        user_ids=np.concatenate([dataset.user_ids[keep], rows.user_ids])[order],
        cutoff=max(dataset.cutoff, rows.known_at),
        label_delay=dataset.label_delay,
        replayed=dataset.replayed,
        withheld=dataset.withheld,
        tx_ids=np.concatenate([dataset.tx_ids[keep], rows.tx_ids])[order],
    )


def retrain_from_feedback(
    history: Path | None,
    store: Path,
    registry: ModelRegistry,
    *,
    label_delay: timedelta,
    members: Sequence[str | EnsembleMember] = DEFAULT_MEMBERS,
    threshold_policy: ThresholdPolicy | None = None,
    gate_policy: GatePolicy | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> RetrainOutcome:
    """Retrain on ``history`` (a file or folder, optional) plus the offline ``store``.

    History is replayed point-in-time with ``label_delay`` (cut-off: its newest event);
    the store's last verdicts are merged in with :func:`with_feedback`. Raises
    :class:`~models.exceptions.TrainingError` before anything is trained when there is
    nothing to train on or only one class; a failure while training, gating or
    registering leaves the registry unchanged (see :func:`models.retrain.retrain`).
    """
    report = on_stage or (lambda _stage: None)
    report(f"read the offline store {store}")
    examples = read_feedback_examples(store)
    if history is None:
        if examples.empty:
            raise TrainingError(
                f"nothing to train on: the offline store {store} holds no labels "
                "and no history was given"
            )
        dataset = feedback_dataset(examples, label_delay)
    else:
        report(f"read history {history}")
        frame = read_labelled_history(history)
        report(f"replay {len(frame)} history rows point-in-time")
        dataset = with_feedback(point_in_time_dataset(frame, label_delay=label_delay), examples)
    _check_classes(dataset, history, store)
    report(f"train on {len(dataset.training.labels)} rows ({len(examples)} from the store)")
    return retrain(
        dataset,
        registry,
        members=members,
        threshold_policy=threshold_policy,
        gate_policy=gate_policy,
        on_stage=on_stage,
    )


class _StoreRows(NamedTuple):
    """The store's examples as training arrays, row-aligned, in the examples' order."""

    features: NDArray[np.float64]
    labels: NDArray[np.int8]
    event_times: NDArray[np.datetime64]
    user_ids: NDArray[np.object_]
    tx_ids: NDArray[np.object_]
    known_at: datetime  # the newest verdict or event time: all of them were known then


def _store_rows(examples: pd.DataFrame) -> _StoreRows:
    missing = [name for name in _REQUIRED if name not in examples.columns]
    if missing:
        raise TrainingError(
            f"store examples lack {missing}; columns: {list(examples.columns)[:20]}"
        )
    if examples.empty:
        raise TrainingError("the offline store holds no labelled transaction")
    frame = examples.drop_duplicates("tx_id", keep="last")
    labels = pd.to_numeric(frame["label"], errors="coerce")
    valid = labels.isin((0, 1))
    if not valid.all():
        bad = sorted({str(v) for v in frame.loc[~valid, "label"].head(5)})
        raise TrainingError(f"store labels must be 1 (fraud) or 0 (legit), got {bad}")
    times = _utc_ms(frame["event_time"], "event_time")
    newest = max(times.max(), _utc_ms(frame["labeled_at"], "labeled_at").max())
    return _StoreRows(
        features=_feature_matrix(frame),
        labels=labels.to_numpy(dtype=np.int8),
        event_times=times,
        user_ids=frame["user_id"].to_numpy(dtype=object),
        tx_ids=frame["tx_id"].to_numpy(dtype=object),
        known_at=pd.Timestamp(newest).tz_localize(UTC).to_pydatetime(),
    )


def _feature_matrix(frame: pd.DataFrame) -> NDArray[np.float64]:
    """``FEATURE_NAMES`` columns from ``f:<name>``; NaN where missing or unknown."""
    matrix = np.full((len(frame), len(FEATURE_NAMES)), np.nan)
    for i, name in enumerate(FEATURE_NAMES):
        column = FEATURE_PREFIX + name
        if column in frame.columns:
            matrix[:, i] = pd.to_numeric(frame[column], errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
    return matrix


def _utc_ms(column: pd.Series[Any], name: str) -> NDArray[np.datetime64]:
    """Naive UTC ``datetime64[ms]`` (the training set's time type) of an aware column."""
    if not isinstance(column.dtype, pd.DatetimeTZDtype):
        raise TrainingError(f"store {name} must be tz-aware datetimes, got {column.dtype}")
    if column.isna().any():
        raise TrainingError(f"store {name}: missing values")
    utc = column.dt.tz_convert("UTC").dt.tz_localize(None)
    times: NDArray[np.datetime64] = utc.to_numpy(dtype="datetime64[ms]")
    return times


def _check_classes(dataset: PointInTimeSet, history: Path | None, store: Path) -> None:
    labels = dataset.training.labels
    sources = f"the offline store {store}" + ("" if history is None else f" and history {history}")
    frauds = int(labels.sum())
    if not labels.size:
        raise TrainingError(f"nothing to train on in {sources}")
    if frauds == 0 or frauds == labels.size:
        missing = "fraud" if frauds == 0 else "legit"
        raise TrainingError(
            f"{sources} give {labels.size} labelled rows but no {missing} label: "
            "a model needs both fraud and legit examples"
        )
