"""A circuit breaker for Redis on the hot path: no decision ever waits on a sick Redis.

A batch that finds Redis failing (refused, reset, or slower than the call timeout) opens
the circuit: from then on the hot path does not call Redis at all, and every batch goes on
without it, flagged degraded with the cause of the failure. Whether Redis is healthy again
is found out OFF the hot path: a daemon thread PINGs it over a connection of its own, with
the same short timeout, every ``probe_interval_s``, and closes the circuit only after
``closes_after`` consecutive pings answered within ``fast_s``. A Redis that answers but
slowly (a saturated server, a bad network) keeps the circuit open, so the hot path never
pays the timeout again until Redis is fast; a slow answer counts as ``redis_timeout``.

The state is one attribute read on the hot path (no lock while closed); transitions take a
lock. Tests drive :meth:`RedisCircuit.probe_once` with a fake clock instead of the thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streams import metrics

__all__ = ["REDIS_TIMEOUT", "REDIS_UNAVAILABLE", "RedisCircuit", "failure_cause"]

_log = structlog.get_logger("redis")

REDIS_TIMEOUT = "redis_timeout"
REDIS_UNAVAILABLE = "redis_unavailable"


def failure_cause(exc: BaseException) -> str:
    """The degraded cause a Redis failure stands for: slow (timeout) or unavailable."""
    return REDIS_TIMEOUT if isinstance(exc, RedisTimeoutError | TimeoutError) else REDIS_UNAVAILABLE


class RedisCircuit:
    """Open on the first failure; closed again by a background prober; see the module doc.

    ``probe`` sends one PING over its own connection and raises on failure. With
    ``background=False`` no thread is started: the caller runs :meth:`probe_once`.
    """

    def __init__(
        self,
        probe: Callable[[], object],
        *,
        fast_s: float,
        probe_interval_s: float = 0.25,
        closes_after: int = 3,
        clock: Callable[[], float] = time.monotonic,
        background: bool = True,
        on_close: Callable[[], object] = lambda: None,
    ) -> None:
        if closes_after < 1:
            raise ValueError(f"closes_after must be at least 1, got {closes_after}")
        self._probe = probe
        self._fast_s = fast_s
        self._interval_s = probe_interval_s
        self._closes_after = closes_after
        self._clock = clock
        self._background = background
        self._on_close = on_close
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._prober: threading.Thread | None = None
        self._fast_in_a_row = 0
        self._opened_at = 0.0
        #: The cause of the last failure while open; None while closed (the hot path reads it).
        self.cause: str | None = None

    @property
    def is_open(self) -> bool:
        """True while the hot path must not call Redis."""
        return self.cause is not None

    def failed(self, exc: BaseException) -> str:
        """A hot-path call failed: open the circuit (once) and return the degraded cause."""
        cause = failure_cause(exc)
        with self._lock:
            opening = self.cause is None
            self.cause = cause
            self._fast_in_a_row = 0
            if opening:
                self._opened_at = self._clock()
                metrics.REDIS_CIRCUIT_OPENS.labels(cause=cause).inc()
                _log.warning("redis_circuit_opened", step="redis", cause=cause, error=str(exc))
            if self._background and self._prober is None and not self._stop.is_set():
                self._prober = threading.Thread(
                    target=self._probe_loop, name="redis-probe", daemon=True
                )
                self._prober.start()
        return cause

    def probe_once(self) -> bool:
        """PING once; close the circuit after enough fast answers in a row. True when closed."""
        if not self.is_open:
            return True
        started = self._clock()
        try:
            self._probe()
        except (RedisError, OSError) as exc:
            self._probe_failed(failure_cause(exc))
            return False
        if self._clock() - started > self._fast_s:
            self._probe_failed(REDIS_TIMEOUT)  # it answers, but too slowly for the hot path
            return False
        with self._lock:
            self._fast_in_a_row += 1
            if self._fast_in_a_row < self._closes_after:
                return False
        try:
            self._on_close()  # e.g. drop connections to the old server, load scripts
        except (RedisError, OSError) as exc:
            self._probe_failed(failure_cause(exc))
            return False
        with self._lock:
            if self._fast_in_a_row < self._closes_after:  # a hot-path failure meanwhile
                return False
            outage_s = self._clock() - self._opened_at
            cause, self.cause = self.cause, None
            self._fast_in_a_row = 0
        _log.info("redis_circuit_closed", step="redis", cause=cause, open_s=round(outage_s, 3))
        return True

    def _probe_failed(self, cause: str) -> None:
        with self._lock:
            self._fast_in_a_row = 0
            if self.cause is not None:
                self.cause = cause

    def _probe_loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.probe_once()
            except Exception:  # the prober must not die with the circuit open for good
                _log.exception("redis_probe_failed", step="redis")
            with self._lock:  # decided under the lock that failed() takes to start a prober
                if not self.is_open:
                    self._prober = None  # a new failure starts a new prober
                    return
        with self._lock:
            self._prober = None

    def close(self) -> None:
        """Stop the prober (the circuit stays as it is)."""
        self._stop.set()
