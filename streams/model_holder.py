"""The models a scorer serves, swapped between batches, never during one.

Two :class:`~operators.engine.ModelSource` implementations:

- :class:`ModelHolder` pins one folder (``FRAUD_MODEL_DIR``) and reloads it when its
  manifest changes: what the demo and the tests use.
- :class:`ServingModels` holds the champion and the challenger a process serves, fed by
  the ``model-updates`` follower (:mod:`streams.model_updates`) and shared by every
  worker thread of the process, so a version is loaded once per process, not per worker.

Loading is verified (every file's sha256 against the manifest); a model that fails to
load is refused with a logged error and the previous model keeps serving. Without any
model the scorer decides with rules only, flagged degraded, rather than refusing traffic.
``fraud_model_info{version,role}`` is 1 for the version serving a role and 0 for the
versions it replaced.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

from operators.scoring import EnsembleScorer
from schemas.exceptions import FraudstreamError
from streams import metrics
from streams._model_loading import load_model_dir

__all__ = ["ModelHolder", "Role", "Served", "ServingModels"]

_log = structlog.get_logger("model_holder")

Role = Literal["champion", "challenger"]


def _mark_swap(role: str, old: EnsembleScorer | None, new: EnsembleScorer | None) -> None:
    if old is not None:
        metrics.MODEL_INFO.labels(version=old.version, role=role).set(0)
    if new is not None:
        metrics.MODEL_INFO.labels(version=new.version, role=role).set(1)


class ModelHolder:
    """A :class:`~operators.engine.ModelSource` that follows a model folder on disk."""

    def __init__(
        self,
        model_dir: Path,
        *,
        role: str = "champion",
        check_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dir = model_dir
        self._role = role
        self._interval = check_interval_s
        self._clock = clock
        self._model: EnsembleScorer | None = None
        self._seen: tuple[float, int] | None = None
        self._next_check = 0.0
        self.last_error: str | None = None
        self._check()

    def _stamp(self) -> tuple[float, int] | None:
        try:
            info = (self._dir / "manifest.json").stat()
        except OSError:
            return None
        return info.st_mtime, info.st_size

    def _check(self) -> None:
        stamp = self._stamp()
        if stamp is None or stamp == self._seen:
            return
        self._seen = stamp
        try:
            model = load_model_dir(self._dir)
        except (FraudstreamError, OSError, ValueError) as exc:
            self.last_error = str(exc)
            _log.error("model_load_refused", step="score", path=str(self._dir), error=str(exc))
            return
        _mark_swap(self._role, self._model, model)
        self._model = model
        self.last_error = None
        _log.info("model_loaded", step="score", version=model.version, path=str(self._dir))

    def current(self) -> EnsembleScorer | None:
        """The model for the next batch (checks the folder at most once per interval)."""
        now = self._clock()
        if now >= self._next_check:
            self._next_check = now + self._interval
            self._check()
        return self._model

    def challenger(self) -> EnsembleScorer | None:
        """A pinned folder has no challenger."""
        return None


@dataclass(frozen=True, slots=True)
class Served:
    """A model serving a role, with what identifies the published version it came from."""

    model: EnsembleScorer
    sha256: str | None  # of manifest.json, as published (None: loaded from the registry)
    source: str  # "model-updates" or "registry"

    @property
    def version(self) -> str:
        """The model's version."""
        return self.model.version


class ServingModels:
    """Champion and challenger of one process: written by one thread, read by the workers.

    Readers take a reference per batch (an attribute read, atomic under the GIL, no lock
    on the hot path); a writer replaces the reference, so a batch that already holds a
    model finishes with it and the next batch gets the new one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._champion: Served | None = None
        self._challenger: Served | None = None

    def current(self) -> EnsembleScorer | None:
        """The champion for the next batch, or None (rules only)."""
        served = self._champion
        return None if served is None else served.model

    def challenger(self) -> EnsembleScorer | None:
        """The challenger for the next batch, or None."""
        served = self._challenger
        return None if served is None else served.model

    def served(self, role: Role) -> Served | None:
        """What serves ``role`` now, with its provenance."""
        return self._champion if role == "champion" else self._challenger

    def install(self, role: Role, served: Served | None) -> None:
        """Serve ``served`` as ``role`` from the next batch on (None: retire the role)."""
        with self._lock:
            old = self.served(role)
            if role == "champion":
                self._champion = served
            else:
                self._challenger = served
            _mark_swap(
                role,
                None if old is None else old.model,
                None if served is None else served.model,
            )
