"""The feedback service's side of the review console: it keeps the queue in Redis.

Every decision the service reads may open a case (REVIEW/BLOCK, not yet labelled) and
joins its user's recent history; every label resolves its case. A batch's changes are
buffered and written in one pipeline after the batch, off the scorers' hot path. If
Redis is down they wait (bounded) for the next tick: the queue is a view, rebuilt as
decisions flow, and must never stop the feedback loop.
"""

from __future__ import annotations

import time

import structlog
from redis.exceptions import RedisError

from schemas import Decision, FraudstreamError, Label
from streams.console import ConsoleServer, ReviewStore, start_console
from streams.settings import Settings

__all__ = ["ReviewFeed", "serve_console"]

_log = structlog.get_logger("fraudstream.feedback")

#: Most buffered decisions kept while Redis is unreachable (the oldest go first).
_MAX_PENDING = 50_000
#: After a Redis failure, seconds before the next try: a dead Redis must not cost the
#: feedback loop a timeout on every batch and every tick.
_BACKOFF_S = 5.0


class ReviewFeed:
    """Buffers a batch's queue changes; :meth:`flush` writes them, :meth:`tick` upkeep."""

    def __init__(self, store: ReviewStore, settings: Settings) -> None:
        self._store = store
        self._kinds = frozenset(settings.console_queue_decisions)
        self._user_history = settings.console_user_history
        self._max_cases = settings.console_queue_max
        self._queued: list[Decision] = []
        self._recent: list[Decision] = []
        self._labels: list[Label] = []
        self._quality: dict[str, float] | None = None
        self._retry_at = 0.0

    def decision(self, decision: Decision, *, labelled: bool) -> None:
        """A decision was read; ``labelled``: a verdict for it is already known."""
        if self._user_history:
            self._recent.append(decision)
        if decision.decision in self._kinds and not labelled:
            self._queued.append(decision)

    def label(self, label: Label) -> None:
        """A label was read: its case leaves the queue and enters the history."""
        self._labels.append(label)

    def flush(self) -> None:
        """Write what the batch changed; on a Redis failure keep it for the next try."""
        if not (self._queued or self._recent or self._labels) or self._backing_off():
            return
        try:
            # Cases first: a label read in the same batch as its decision closes the case.
            self._store.record_decisions(self._queued, self._recent, self._user_history)
            self._queued.clear()
            self._recent.clear()
            self._store.record_labels(self._labels)
            self._labels.clear()
        except (RedisError, OSError) as exc:
            del self._queued[:-_MAX_PENDING]
            del self._recent[:-_MAX_PENDING]
            self._failed("review queue not updated", exc)

    def tick(self, quality: dict[str, float]) -> None:
        """Once a second: retry a failed flush, publish the online figures, trim the queue."""
        self.flush()
        if self._backing_off():
            return
        try:
            if quality != self._quality:
                self._store.publish_online_quality(quality)
                self._quality = dict(quality)
            self._store.trim(self._max_cases)
        except (RedisError, OSError) as exc:
            self._failed("review queue upkeep failed", exc)

    def _backing_off(self) -> bool:
        return time.monotonic() < self._retry_at

    def _failed(self, what: str, exc: Exception) -> None:
        self._retry_at = time.monotonic() + _BACKOFF_S
        _log.warning(what, step="review", error=type(exc).__name__, retry_in_s=_BACKOFF_S)


def serve_console(settings: Settings) -> ConsoleServer | None:
    """Serve the review console; the feedback loop runs on even if it cannot."""
    try:
        server = start_console(settings)
    except FraudstreamError as exc:
        _log.error("review console not started", step="console", error=str(exc))
        return None
    accounts = len(settings.console_analysts)
    _log.info("review console started", step="console", url=server.url, analysts=accounts)
    if not accounts:
        _log.warning(
            "no analyst can sign in: set FRAUD_CONSOLE_ANALYSTS "
            "(see `fraudstream console hash-password`)",
            step="console",
        )
    return server
