"""When each record of a replayed history is due: the schedule behind ``fraudstream replay``.

A backtest of the live path must feed the scorer history as it happened: in event-time
order, with the gaps between events kept (divided by a speed), so that consumer lag,
batching and windows behave as they would under real traffic. The schedule is absolute:
record ``i`` is due at ``start + (t_i - t_0) / speed``. A slow send therefore never shifts
the records after it (no drift), and a replay that fell behind sends what is overdue at
once instead of stretching the schedule (no coordinated omission).

Everything here is pure (``paced`` takes its clock and sleep), so the timing is unit
tested without a broker; ``streams.cli._replay`` adds Kafka and the progress display.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from numpy.typing import ArrayLike, NDArray

from streams.exceptions import ReplayError

__all__ = [
    "MAX_SPEED",
    "ReplayError",
    "Schedule",
    "Speed",
    "describe_span",
    "paced",
    "parse_moment",
    "parse_speed",
]


@dataclass(frozen=True, slots=True)
class Speed:
    """Seconds of history per wall-clock second; ``inf`` is "as fast as the broker takes it"."""

    factor: float

    @property
    def is_max(self) -> bool:
        """No pacing at all: every record is due at the start."""
        return math.isinf(self.factor)

    def __str__(self) -> str:
        return "max" if self.is_max else f"{self.factor:g}x"


MAX_SPEED = Speed(math.inf)

_SPEED_HELP = "use a factor such as 60x (an hour of history a minute), 1x (real time) or max"


def parse_speed(text: str) -> Speed:
    """``"60x"``, ``"1.5x"``, ``"1x"`` or ``"max"`` (any case); anything else is refused.

    A bare number is refused too: ``60`` could be read as events per second.
    """
    cleaned = text.strip().lower()
    if cleaned == "max":
        return MAX_SPEED
    number, x, rest = cleaned.partition("x")
    if not x or rest:
        hint = f" (did you mean {cleaned}x?)" if _is_number(cleaned) else ""
        raise ReplayError(f"--speed {text!r}: {_SPEED_HELP}{hint}")
    if not _is_number(number):
        raise ReplayError(f"--speed {text!r}: {_SPEED_HELP}")
    factor = float(number)
    if not (math.isfinite(factor) and factor > 0):
        raise ReplayError(
            f"--speed {text!r}: the factor must be a positive finite number "
            "(0.5x is half real time; use max for no pacing)"
        )
    return Speed(factor)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_moment(text: str, option: str) -> datetime:
    """A date (midnight UTC at its start) or an ISO 8601 time; no zone means UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReplayError(
            f"{option} {text!r}: use a date (2018-07-01) or an ISO 8601 time (2018-07-01T12:00:00Z)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True, slots=True, eq=False)
class Schedule:
    """Event times in replay order and, for each, its due time after the start.

    ``order`` holds the input positions in replay order (a stable sort, so events with
    equal times keep the file's order); ``event_ms`` the event times in that order.
    Build one with :meth:`of`.
    """

    order: NDArray[np.intp]
    event_ms: NDArray[np.int64]
    speed: Speed

    @classmethod
    def of(cls, event_ms: ArrayLike, speed: Speed) -> Schedule:
        """The schedule of events given their epoch-millisecond times, in any order."""
        times = np.asarray(event_ms, dtype=np.int64).reshape(-1)
        if times.size == 0:
            raise ReplayError("nothing to replay: no events")
        order = np.argsort(times, kind="stable")
        return cls(order=order, event_ms=times[order], speed=speed)

    def __len__(self) -> int:
        return int(self.event_ms.size)

    def head(self, count: int) -> Schedule:
        """The first ``count`` records only (a --count limit)."""
        if count < 1:
            raise ReplayError(f"--count must be at least 1, got {count}")
        return Schedule(self.order[:count], self.event_ms[:count], self.speed)

    @property
    def first_ms(self) -> int:
        """Event time of the first record."""
        return int(self.event_ms[0])

    @property
    def last_ms(self) -> int:
        """Event time of the last record."""
        return int(self.event_ms[-1])

    @property
    def span_s(self) -> float:
        """Seconds of history from the first record to the last."""
        return (self.last_ms - self.first_ms) / 1000

    @property
    def wall_s(self) -> float:
        """Seconds the schedule takes on the wall clock (0 at max speed)."""
        return 0.0 if self.speed.is_max else self.span_s / self.speed.factor

    def due_s(self) -> NDArray[np.float64]:
        """Seconds after the start at which each record is due, in replay order."""
        if self.speed.is_max:
            return np.zeros(len(self), dtype=np.float64)
        offsets: NDArray[np.float64] = (self.event_ms - self.first_ms) / 1000 / self.speed.factor
        return offsets

    def stamp_ms(self, position: int, *, start_ms: int, sent_ms: int) -> int:
        """``--restamp``: the event time to send instead of the original one.

        The first event is stamped with the replay's start and the others keep their
        offset from it divided by the speed, so stamps never run ahead of the wall clock
        (the scorer refuses events from the future). At max speed there is no schedule to
        keep, and each event is stamped with the moment it is sent, ``sent_ms``.
        """
        if self.speed.is_max:
            return sent_ms
        offset_ms = int(self.event_ms[position] - self.first_ms)
        return start_ms + round(offset_ms / self.speed.factor)


def paced(
    schedule: Schedule,
    *,
    start: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
    idle: Callable[[], bool] | None = None,
    max_sleep_s: float = 0.05,
) -> Iterator[int]:
    """Positions ``0 .. len-1``, each yielded no earlier than its due time on ``clock``.

    Due times count from ``start`` (default: ``clock()`` at the first ``next``). It sleeps
    only until the next record is due, never longer than ``max_sleep_s`` at a time so
    Ctrl-C and ``idle`` stay responsive; overdue records are yielded without sleeping.
    ``idle`` is called while waiting; returning True ends the replay (a --duration limit).
    """
    origin = clock() if start is None else start
    if schedule.speed.is_max:
        yield from range(len(schedule))
        return
    for position, offset in enumerate(schedule.due_s().tolist()):
        due = origin + offset
        while (delay := due - clock()) > 0:
            if idle is not None and idle():
                return
            sleep(min(delay, max_sleep_s))
        yield position


def describe_span(seconds: float) -> str:
    """A length of history or wall time for people: ``135d 23h``, ``2h 5m``, ``4.2s``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"
