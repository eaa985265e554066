"""A recurring failure is logged when it starts or changes, not on every retry."""

from __future__ import annotations

import structlog
from structlog.testing import capture_logs

from streams.logs import FailureLog


def test_a_failure_is_logged_once_until_it_changes_or_clears() -> None:
    failures = FailureLog(structlog.get_logger("test"), "thing_failed", step="thing")
    with capture_logs() as logs:
        for _ in range(3):
            failures.failed(OSError("down"))
        failures.failed(TimeoutError("slow"))
        failures.succeeded()
        failures.failed(TimeoutError("slow"))

    assert [(e["event"], e["step"], e["error"]) for e in logs] == [
        ("thing_failed", "thing", "OSError: down"),
        ("thing_failed", "thing", "TimeoutError: slow"),
        ("thing_failed", "thing", "TimeoutError: slow"),
    ]
