"""The models a scorer serves, swapped between batches, never during one.

Two :class:`~operators.engine.ModelSource` implementations:

- :class:`ModelHolder` pins one folder (``FRAUD_MODEL_DIR``) and reloads it when its
  manifest changes: what the demo and the tests use.
- :class:`ServingModels` holds the champion, the challenger and the online model a
  process serves, fed by the ``model-updates`` follower (:mod:`streams.model_updates`)
  and shared by every worker thread of the process, so a version is loaded once per
  process, not per worker.

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
from typing import Any, Generic, Literal, Protocol, TypeVar, overload

import structlog

from operators.scoring import EnsembleScorer, OnlineScorer
from schemas.exceptions import FraudstreamError
from streams import metrics
from streams._model_loading import load_model_dir

__all__ = ["EnsembleRole", "ModelHolder", "Role", "Served", "ServingModels"]

_log = structlog.get_logger("model_holder")

#: The roles served by a full ensemble (with thresholds and reason codes).
EnsembleRole = Literal["champion", "challenger"]
Role = Literal["champion", "challenger", "online"]


class _Versioned(Protocol):
    @property
    def version(self) -> str: ...


ModelT = TypeVar("ModelT", EnsembleScorer, OnlineScorer)


def _mark_swap(role: str, old: _Versioned | None, new: _Versioned | None) -> None:
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

    def online(self) -> OnlineScorer | None:
        """A pinned folder has no online model."""
        return None


@dataclass(frozen=True, slots=True)
class Served(Generic[ModelT]):
    """A model serving a role, with what identifies the published version it came from."""

    model: ModelT
    # As published: of manifest.json for an ensemble, of the .onnx file for an online
    # model (None: loaded from the registry).
    sha256: str | None
    source: str  # "model-updates" or "registry"

    @property
    def version(self) -> str:
        """The model's version."""
        return self.model.version


class ServingModels:
    """Models of one process, by role: written by one thread, read by the workers.

    Readers take a reference per batch (an attribute read, atomic under the GIL, no lock
    on the hot path); a writer replaces the reference, so a batch that already holds a
    model finishes with it and the next batch gets the new one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._champion: Served[EnsembleScorer] | None = None
        self._challenger: Served[EnsembleScorer] | None = None
        self._online: Served[OnlineScorer] | None = None

    def current(self) -> EnsembleScorer | None:
        """The champion for the next batch, or None (rules only)."""
        served = self._champion
        return None if served is None else served.model

    def challenger(self) -> EnsembleScorer | None:
        """The challenger for the next batch, or None."""
        served = self._challenger
        return None if served is None else served.model

    def online(self) -> OnlineScorer | None:
        """The online model for the next batch, or None (the champion alone)."""
        served = self._online
        return None if served is None else served.model

    @overload
    def served(self, role: EnsembleRole) -> Served[EnsembleScorer] | None: ...
    @overload
    def served(self, role: Literal["online"]) -> Served[OnlineScorer] | None: ...
    @overload
    def served(self, role: Role) -> Served[Any] | None: ...
    def served(self, role: Role) -> Served[Any] | None:
        """What serves ``role`` now, with its provenance."""
        if role == "champion":
            return self._champion
        return self._challenger if role == "challenger" else self._online

    @overload
    def install(self, role: EnsembleRole, served: Served[EnsembleScorer] | None) -> None: ...
    @overload
    def install(self, role: Literal["online"], served: Served[OnlineScorer] | None) -> None: ...
    @overload
    def install(self, role: Role, served: Served[Any] | None) -> None: ...
    def install(self, role: Role, served: Served[Any] | None) -> None:
        """Serve ``served`` as ``role`` from the next batch on (None: retire the role)."""
        with self._lock:
            old = self.served(role)
            if role == "champion":
                self._champion = served
            elif role == "challenger":
                self._challenger = served
            else:
                self._online = served
            _mark_swap(
                role,
                None if old is None else old.model,
                None if served is None else served.model,
            )
