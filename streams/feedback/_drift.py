"""When sustained prediction drift should start a retrain (``FRAUD_RETRAIN_ON_DRIFT``).

A drifting score means the champion is being asked about traffic it was not judged on.
One noisy window is no reason to retrain; a score that stays drifted is. So the trigger
fires once the worst scorer process's prediction PSI has been above the threshold in
every summary for ``after_s`` (no summary, or a dip below, starts the count again), and
not again within ``cooldown_s``. A promoted model resets the scorers' windows, so its own
drift figures start from scratch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import structlog
from redis.exceptions import RedisError

from streams.drift import DriftStatus
from streams.redis_store import RedisStore

__all__ = ["DriftTrigger"]

_log = structlog.get_logger("feedback")


class DriftTrigger:
    """Decides, from the scorers' latest drift summaries, whether to retrain now."""

    def __init__(
        self,
        threshold: float,
        after_s: float,
        cooldown_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Fire after ``after_s`` above ``threshold``, at most once per ``cooldown_s``."""
        self._threshold = threshold
        self._after_s = after_s
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._above_since: float | None = None
        self._last_fired: float | None = None

    @property
    def sustained_s(self) -> float:
        """How long the prediction PSI has stayed above the threshold (0 if it is not)."""
        return 0.0 if self._above_since is None else self._clock() - self._above_since

    def update(self, statuses: Sequence[DriftStatus]) -> bool:
        """Take the latest summaries; True when a retrain should start now."""
        now = self._clock()
        worst = max(
            (s.prediction_psi for s in statuses if s.prediction_psi is not None), default=None
        )
        if worst is None or worst <= self._threshold:
            self._above_since = None
            return False
        if self._above_since is None:
            self._above_since = now
        if now - self._above_since < self._after_s:
            return False
        if self._last_fired is not None and now - self._last_fired < self._cooldown_s:
            return False
        self._last_fired = now
        self._above_since = None  # a further retrain needs drift sustained afresh
        return True

    def due(self, store: RedisStore) -> bool:
        """Read the scorers' summaries from Redis and :meth:`update`; logs what it decides."""
        try:
            statuses = [DriftStatus.from_json(raw) for raw in store.drift_statuses()]
        except (RedisError, OSError, ValueError, TypeError, KeyError) as exc:
            _log.warning("drift status not read", step="drift", error=str(exc))
            return False
        fire = self.update(statuses)
        if fire:
            _log.warning(
                "sustained prediction drift: retraining",
                step="drift",
                psi=max((s.prediction_psi or 0.0 for s in statuses), default=None),
                models=sorted({s.model_version for s in statuses}),
            )
        return fire
