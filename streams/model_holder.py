"""The model a scorer serves, swapped between batches when its folder changes.

Loading is verified (every file's sha256 against the manifest); a model that fails to
load is refused with a logged error and the previous model keeps serving. Without any
model the scorer decides with rules only, flagged degraded, rather than refusing traffic.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import structlog

from operators.features import FEATURE_NAMES
from operators.scoring import EnsembleScorer
from schemas.exceptions import FraudstreamError
from streams import metrics

__all__ = ["ModelHolder"]

_log = structlog.get_logger("model_holder")


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
            model = EnsembleScorer.load(self._dir, expected_feature_names=FEATURE_NAMES)
            # ONNX Runtime's first run allocates; do it here, not inside a batch's budget.
            model.score(np.full((1, len(FEATURE_NAMES)), np.nan))
        except (FraudstreamError, OSError, ValueError) as exc:
            self.last_error = str(exc)
            _log.error("model_load_refused", step="score", path=str(self._dir), error=str(exc))
            return
        if self._model is not None:
            metrics.MODEL_INFO.labels(version=self._model.version, role=self._role).set(0)
        self._model = model
        self.last_error = None
        metrics.MODEL_INFO.labels(version=model.version, role=self._role).set(1)
        _log.info("model_loaded", step="score", version=model.version, path=str(self._dir))

    def current(self) -> EnsembleScorer | None:
        """The model for the next batch (checks the folder at most once per interval)."""
        now = self._clock()
        if now >= self._next_check:
            self._next_check = now + self._interval
            self._check()
        return self._model
