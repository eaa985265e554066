from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from streams.exceptions import FeedbackError
from streams.feedback import RetrainSchedule, ServiceClock


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.moment = start

    def __call__(self) -> datetime:
        return self.moment


def test_weekly_schedule_fires_once_per_fire_time() -> None:
    clock = FakeClock(datetime(2026, 11, 30, 2, 59, 58, tzinfo=UTC))  # a Monday
    schedule = RetrainSchedule("0 3 * * 1", clock)
    assert schedule.next_run == datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    assert not schedule.due()
    clock.moment += timedelta(seconds=3)
    assert schedule.due()
    assert not schedule.due()  # reported once
    assert schedule.next_run == datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


def test_missed_fire_times_collapse_into_one_run() -> None:
    clock = FakeClock(datetime(2026, 11, 1, tzinfo=UTC))
    schedule = RetrainSchedule("0 3 * * 1", clock)
    clock.moment += timedelta(weeks=5)
    assert schedule.due()
    assert not schedule.due()
    assert schedule.next_run > clock.moment


def test_a_bad_expression_is_refused_with_an_example() -> None:
    with pytest.raises(FeedbackError, match="cron expression"):
        RetrainSchedule("every monday", FakeClock(datetime(2026, 1, 1, tzinfo=UTC)))


def test_service_clock_starts_where_told_and_runs_at_real_pace() -> None:
    ticks = iter([100.0, 107.5])
    clock = ServiceClock(datetime(2026, 11, 30, 2, 59, tzinfo=UTC), monotonic=lambda: next(ticks))
    assert clock.now() == datetime(2026, 11, 30, 2, 59, 7, 500000, tzinfo=UTC)


def test_service_clock_without_start_is_the_wall_clock() -> None:
    before = datetime.now(UTC)
    assert before <= ServiceClock().now() <= datetime.now(UTC)
