"""The model lifecycle of a backtest: train at each cut-off, gate, champion or challenger.

At the end of the warm-up and then at every week boundary, a candidate is trained with
:func:`models.candidate.train_candidate` on the labels known at that instant and gated
against the champion with :func:`models.gate.run_gate`, exactly as ``fraudstream
train``/``retrain`` do: it becomes champion only if it passes. The first model has no
champion to beat.

Which labels: those of events in ``[cut-off - delay - train_window, cut-off - delay)``,
i.e. labels that became visible strictly before the cut-off, from the trailing
``train_window`` of event time. Features come from the run's single featurisation, which
only looks back, so a row's features are what a replay up to the cut-off would give.

Candidates do not depend on each other (only the gate does), so they are trained ahead
of time by ``workers`` processes while the main process decides batches; the main process
waits for a candidate only when the decisions reach its cut-off. Workers read the
feature matrix from ``.npy`` files (memory-mapped, no pickle) and write model folders.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from models.backtest._config import BacktestConfig, BacktestError, iso_ms
from models.backtest._history import NO_LABEL, Prepared
from models.backtest._worker import WorkerPool
from models.candidate import train_candidate
from models.ensemble import EnsembleMember, ThresholdPolicy, XGBoostMember, train_ensemble
from models.exceptions import ModelsError
from models.gate import run_gate
from models.manifest import GateRecord, Manifest, read_manifest
from models.pit import PointInTimeSet
from models.training_set import TrainingSet
from operators.engine import DECISION_FEATURES
from operators.features import FEATURE_NAMES
from operators.scoring import EnsembleScorer

__all__ = ["Lifecycle", "TrainingJob"]

_ARRAYS = ("features", "labels", "event_ms", "users")


@dataclass(frozen=True, slots=True)
class TrainingJob:
    """One candidate: its cut-off, the rows its labels come from, where it is written."""

    cutoff_ms: int
    lo: int
    hi: int
    folder: str
    version: str
    label_delay_ms: int
    members: tuple[str, ...]
    n_estimators: int
    threads: int
    seed: int
    target_precision: float
    review_share: float
    feature_names: tuple[str, ...]


def _dataset(
    features: NDArray[Any],
    labels: NDArray[np.int8],
    event_ms: NDArray[np.int64],
    users: NDArray[Any],
    job: TrainingJob,
) -> PointInTimeSet:
    """The point-in-time set of ``job``: its window's labelled rows."""
    labelled = np.flatnonzero(labels[job.lo : job.hi] != NO_LABEL) + job.lo
    training = TrainingSet(
        features=np.asarray(features[labelled], dtype=np.float64),
        labels=np.asarray(labels[labelled], dtype=np.int8),
        event_times=np.asarray(event_ms[labelled]).astype("datetime64[ms]"),
    )
    return PointInTimeSet(
        training=training,
        user_ids=np.asarray(users[labelled]).astype(object),
        cutoff=_utc(job.cutoff_ms),
        label_delay=timedelta(milliseconds=job.label_delay_ms),
        replayed=job.hi,
        withheld=0,
    )


def _members(job: TrainingJob) -> list[str | EnsembleMember]:
    return [
        XGBoostMember(n_estimators=job.n_estimators, n_jobs=job.threads, seed=job.seed)
        if name == "xgboost"
        else name
        for name in job.members
    ]


def train_job(job: TrainingJob, arrays_dir: str) -> float:
    """Train ``job`` from the memory-mapped arrays in ``arrays_dir``; return its seconds.

    Runs in a worker process (a top-level function, so it can be sent there by name).
    """
    started = time.perf_counter()
    loaded = {name: np.load(Path(arrays_dir) / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
    dataset = _dataset(
        loaded["features"], loaded["labels"], loaded["event_ms"], loaded["users"], job
    )
    _train(job, dataset)
    return time.perf_counter() - started


def _train(job: TrainingJob, dataset: PointInTimeSet) -> None:
    policy = ThresholdPolicy(target_precision=job.target_precision, review_share=job.review_share)
    if job.feature_names == FEATURE_NAMES:
        train_candidate(
            dataset, Path(job.folder), members=_members(job), threshold_policy=policy,
            version=job.version,
        )  # fmt: skip
        return
    # The ``decision`` what-if: train_candidate is for the served vector, so the ensemble
    # is trained directly (same trainer, members and thresholds; no CP@100 in the manifest).
    training = dataset.training
    train_ensemble(
        training.features, training.labels, training.event_times, job.feature_names,
        Path(job.folder), job.version, members=_members(job), threshold_policy=policy,
    )  # fmt: skip


class Lifecycle:
    """Trains every scheduled candidate (ahead of time) and applies the gate in order."""

    def __init__(
        self,
        prepared: Prepared,
        config: BacktestConfig,
        moments_ms: list[int],
        models_dir: Path,
        work_dir: Path,
        pool: WorkerPool | None = None,
    ) -> None:
        self._prepared = prepared
        self._users = pd.factorize(prepared.frame["user_id"])[0].astype(np.int64)
        delay_ms = int(config.label_delay.total_seconds() * 1000)
        window_ms = int(config.train_window.total_seconds() * 1000)
        threads = 1 if config.workers >= 2 else 2
        decision = config.champion_features == "decision"
        self.feature_names = DECISION_FEATURES if decision else FEATURE_NAMES
        self._features = (
            np.hstack((prepared.features, prepared.merchant_labels)) if decision
            else prepared.features
        )  # fmt: skip
        self._jobs: dict[int, TrainingJob] = {}
        for moment in moments_ms:
            horizon = moment - delay_ms  # labels of earlier events are visible at ``moment``
            lo, hi = np.searchsorted(prepared.event_ms, (horizon - window_ms, horizon), "left")
            version = f"bt-{_utc(moment):%Y%m%dT%H%M}Z"
            self._jobs[moment] = TrainingJob(
                cutoff_ms=moment, lo=int(lo), hi=int(hi), folder=str(models_dir / version),
                version=version, label_delay_ms=delay_ms, members=config.members,
                n_estimators=config.n_estimators, threads=threads, seed=config.seed,
                target_precision=config.block_target_precision, review_share=config.review_share,
                feature_names=self.feature_names,
            )  # fmt: skip
        self._arrays_dir = work_dir
        self._pool = pool if self._jobs else None
        self._index = {moment: index for index, moment in enumerate(self._jobs)}
        self.champion: EnsembleScorer | None = None
        self._champion_dir: Path | None = None
        self.models: list[dict[str, Any]] = []
        self.seconds = {"train_wait": 0.0, "gate": 0.0, "train_cpu": 0.0}
        if self._pool is not None:
            self._submit(self._pool)

    def _submit(self, pool: WorkerPool) -> None:
        arrays = {
            "features": self._features,
            "labels": self._prepared.labels,
            "event_ms": self._prepared.event_ms,
            "users": self._users,
        }
        self._arrays_dir.mkdir(parents=True, exist_ok=True)
        for name, values in arrays.items():
            np.save(self._arrays_dir / f"{name}.npy", values, allow_pickle=False)
        pool.submit(self._arrays_dir, list(self._jobs.values()))

    def at(self, moment_ms: int) -> None:
        """The scheduled cut-off ``moment_ms`` is reached: train (or collect), gate, promote."""
        job = self._jobs[moment_ms]
        started = time.perf_counter()
        dataset: PointInTimeSet | None = None
        try:
            if self._pool is None:
                dataset = self._dataset(job)
                _train(job, dataset)
                self.seconds["train_cpu"] += time.perf_counter() - started
            else:
                self.seconds["train_cpu"] += self._pool.result(self._index[moment_ms])
        except BacktestError:
            raise
        except ModelsError as exc:
            self.seconds["train_wait"] += time.perf_counter() - started
            self.models.append(self._failed(job, str(exc)))
            return
        self.seconds["train_wait"] += time.perf_counter() - started
        started = time.perf_counter()
        dataset = dataset or self._dataset(job)
        folder = Path(job.folder)
        try:
            record = run_gate(dataset, folder, self._champion_dir)
            manifest = read_manifest(folder)
            champion = (
                EnsembleScorer.load(folder, expected_feature_names=self.feature_names)
                if record.verdict == "champion"
                else None
            )
        except ModelsError as exc:  # the champion stays; the candidate is recorded as failed
            self.seconds["gate"] += time.perf_counter() - started
            self.models.append(self._failed(job, f"gate: {exc}"))
            return
        if champion is not None:
            self.champion, self._champion_dir = champion, folder
        self.seconds["gate"] += time.perf_counter() - started
        self.models.append(_record(job, manifest, record))

    def _dataset(self, job: TrainingJob) -> PointInTimeSet:
        prepared = self._prepared
        return _dataset(self._features, prepared.labels, prepared.event_ms, self._users, job)

    def _failed(self, job: TrainingJob, reason: str) -> dict[str, Any]:
        labels = self._prepared.labels[job.lo : job.hi]
        return {
            "version": None,
            "trained_at": iso_ms(job.cutoff_ms),
            "role": "failed",
            "verdict": "failed",
            "train_rows": int((labels != NO_LABEL).sum()),
            "frauds": int((labels == 1).sum()),
            "gate_reason": f"not promoted: {reason}",
            "validation": None,
        }


def _record(job: TrainingJob, manifest: Manifest, gate: GateRecord) -> dict[str, Any]:
    metrics = manifest.metrics
    return {
        "version": manifest.version,
        "trained_at": iso_ms(job.cutoff_ms),
        "role": gate.verdict,
        "verdict": gate.verdict,
        "train_rows": manifest.training_rows + manifest.validation_rows,
        "frauds": manifest.training_frauds + manifest.validation_frauds,
        "gate_reason": gate.reason,
        "validation": {"auc": metrics.auc, "ap": metrics.ap, "cp100": metrics.cp_at_100},
        "labels_from": iso_ms(int(manifest.training_window.from_.timestamp() * 1000)),
        "labels_to": iso_ms(int(manifest.validation_window.to.timestamp() * 1000)),
        "thresholds": {"block": manifest.thresholds.block, "review": manifest.thresholds.review},
        "gate": {
            "rows": gate.rows,
            "frauds": gate.frauds,
            "champion_version": gate.champion_version,
            "candidate": _gate_metrics(gate.candidate),
            "champion": None if gate.champion is None else _gate_metrics(gate.champion),
        },
    }


def _gate_metrics(metrics: Any) -> dict[str, float | None]:
    return {"auc": metrics.auc, "ap": metrics.ap, "cp100": metrics.cp_at_100}


def _utc(epoch_ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=epoch_ms)
