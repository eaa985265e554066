"""When the weekly retrain runs: a cron expression read against a clock we can move.

Faust's own ``@app.crontab`` sleeps on the wall clock, which no test can fast-forward.
The service instead ticks once a second and asks :class:`RetrainSchedule` whether a
fire time has passed on :class:`ServiceClock`; a drill or a test starts that clock at a
chosen instant (``FRAUD_FEEDBACK_CLOCK_START``) and the weekly job fires seconds later,
through exactly the code path production uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from croniter import croniter

from streams.exceptions import FeedbackError

__all__ = ["RetrainSchedule", "ServiceClock"]


class ServiceClock:
    """Wall-clock time, or time that started at ``start`` and runs at the real pace."""

    def __init__(
        self, start: datetime | None = None, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._monotonic = monotonic
        self._origin = monotonic()
        self._start = None if start is None else start.astimezone(UTC)

    def now(self) -> datetime:
        """The current instant, UTC."""
        if self._start is None:
            return datetime.now(UTC)
        return self._start + timedelta(seconds=self._monotonic() - self._origin)


class RetrainSchedule:
    """Fire times of a cron expression (UTC), each reported once by :meth:`due`."""

    def __init__(self, expression: str, clock: Callable[[], datetime]) -> None:
        if not croniter.is_valid(expression):
            raise FeedbackError(
                f"retrain schedule {expression!r} is not a cron expression "
                "(five fields: minute hour day-of-month month day-of-week, e.g. '0 3 * * 1')"
            )
        self.expression = expression
        self._clock = clock
        self._next = self._after(clock())

    def _after(self, moment: datetime) -> datetime:
        fire: datetime = croniter(self.expression, moment).get_next(datetime)
        return fire.astimezone(UTC)

    @property
    def next_run(self) -> datetime:
        """The next fire time."""
        return self._next

    def due(self) -> bool:
        """True once per fire time that has passed; missed fire times collapse into one."""
        now = self._clock()
        if now < self._next:
            return False
        self._next = self._after(now)
        return True
