"""Structured JSON logs (structlog) for the long-running services.

Every event carries the dataflow step name as ``step`` so a log line, a metric label and
a step in the flow all use one name. Card numbers cannot reach a log: only validated or
redacted values are ever logged.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

__all__ = ["FailureLog", "configure_logging"]


def configure_logging(level: str = "INFO", **context: object) -> None:
    """JSON lines on stderr, with ``context`` (e.g. process id) bound to every event."""
    logging.basicConfig(level=level, stream=sys.stderr, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(**context)


class FailureLog:
    """Logs a recurring failure when it starts or changes, not on every batch or round.

    For side work that retries forever (drift figures, lag, the online model): a broken
    dependency would otherwise write the same warning many times a second.
    """

    def __init__(self, logger: Any, event: str, step: str) -> None:
        """``event`` and ``step`` name the warning; ``logger`` is a structlog logger."""
        self._logger = logger
        self._event = event
        self._step = step
        self._last: str | None = None

    def failed(self, exc: BaseException | str) -> None:
        """Note a failure (an exception, or its description); logged if it is a new one."""
        error = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        if error != self._last:
            self._logger.warning(self._event, step=self._step, error=error)
        self._last = error

    def succeeded(self) -> None:
        """The failure is over: the next one is logged again."""
        self._last = None
