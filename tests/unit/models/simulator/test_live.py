from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from models.exceptions import SimulatorError
from models.simulator import (
    COLUMNS,
    PATTERNS,
    SimulatorConfig,
    held_to_clock,
    live_events,
    natural_rate,
)

LIVE_CONFIG = SimulatorConfig(users=200, merchants=80, seed=5)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def racing_clock(step: timedelta = timedelta(microseconds=1)) -> Callable[[], datetime]:
    """A clock that moves a microsecond per reading: a consumer far faster than real time."""
    ticks = itertools.count()
    return lambda: T0 + step * next(ticks)


def event_time(event: dict[str, object]) -> datetime:
    moment = event["event_time"]
    assert isinstance(moment, datetime)
    return moment


def take(
    count: int, config: SimulatorConfig = LIVE_CONFIG, clock: Callable[[], datetime] | None = None
) -> list[dict[str, object]]:
    return list(itertools.islice(live_events(config, clock or racing_clock()), count))


@pytest.fixture(scope="module")
def events() -> list[dict[str, object]]:
    return take(30_000)  # about five weeks of 200 users: many windows, two trip periods


def test_events_carry_the_contract_and_the_labels(events: list[dict[str, object]]) -> None:
    for event in events[:50]:
        assert tuple(event) == COLUMNS
        assert isinstance(event["amount"], str)
        assert isinstance(event["event_time"], datetime)
    assert len({event["tx_id"] for event in events}) == len(events)


def test_event_times_start_at_the_clock_and_never_go_backwards(
    events: list[dict[str, object]],
) -> None:
    times = [event_time(event) for event in events]
    assert all(a <= b for a, b in itertools.pairwise(times))
    assert T0 <= times[0] < T0 + timedelta(hours=6)  # 200 users pay every few minutes
    assert all(t.tzinfo == UTC for t in times[:100])
    assert all(t.microsecond % 1000 == 0 for t in times)


def test_a_fast_consumer_gets_simulated_times_not_squeezed_ones(
    events: list[dict[str, object]],
) -> None:
    # The racing clock advanced 30 ms while these were pulled; the timeline spans weeks,
    # as long as 200 users need to make 30,000 transactions.
    span = (event_time(events[-1]) - event_time(events[0])).total_seconds()
    expected = len(events) / natural_rate(LIVE_CONFIG)
    assert 0.8 * expected < span < 1.25 * expected


def test_the_clock_is_read_once_so_pull_speed_cannot_change_the_stream() -> None:
    readings = 0

    def counting_clock() -> datetime:
        nonlocal readings
        readings += 1
        return T0 + timedelta(hours=readings - 1)  # jumps an hour per reading

    slow_pull = take(2000, clock=counting_clock)
    assert readings == 1
    assert slow_pull == take(2000, clock=lambda: T0)


def test_the_long_run_rate_is_the_natural_rate() -> None:
    config = SimulatorConfig(users=300, merchants=75, seed=9)
    end = T0 + timedelta(days=14)
    stream = live_events(config, racing_clock())
    count = sum(1 for _ in itertools.takewhile(lambda e: event_time(e) < end, stream))
    expected = natural_rate(config) * 14 * 86_400
    assert 0.9 * expected < count < 1.1 * expected


def test_fraud_is_near_its_target_rate(events: list[dict[str, object]]) -> None:
    fraud = sum(event["label"] == 1 for event in events)
    assert 0.003 < fraud / len(events) < 0.015  # target 0.008


def test_live_traffic_includes_every_pattern() -> None:
    config = SimulatorConfig(users=200, merchants=80, seed=5, fraud_rate=0.05)
    fraudulent = [event for event in take(20_000, config) if event["label"] == 1]
    assert set(PATTERNS) == {event["pattern"] for event in fraudulent}
    assert 0.02 < len(fraudulent) / 20_000 < 0.08


def test_same_seed_and_clock_same_stream() -> None:
    assert take(3000) == take(3000)
    other = take(3000, SimulatorConfig(users=200, merchants=80, seed=6))
    assert [e["card_id"] for e in other] != [e["card_id"] for e in take(3000)]


def test_a_restart_never_repeats_a_tx_id() -> None:
    first = take(100)
    again = take(100, clock=lambda: T0 + timedelta(hours=1))
    assert {e["tx_id"] for e in first}.isdisjoint({e["tx_id"] for e in again})


def test_other_time_zones_are_converted_to_utc() -> None:
    plus_two = T0.astimezone(timezone(timedelta(hours=2)))
    assert plus_two.hour == 14
    event = next(live_events(LIVE_CONFIG, lambda: plus_two))
    assert event_time(event).tzinfo == UTC
    assert T0 <= event_time(event) < T0 + timedelta(hours=6)
    assert event["tx_id"] == take(1, clock=lambda: T0)[0]["tx_id"]


def test_a_naive_clock_is_refused() -> None:
    with pytest.raises(SimulatorError, match="timezone-aware"):
        next(live_events(LIVE_CONFIG, lambda: datetime(2026, 1, 1)))


class FakeTime:
    """A clock that only moves when someone sleeps: no waiting in tests."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.slept: list[float] = []

    def clock(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


def at(*offsets_s: float) -> Iterator[dict[str, object]]:
    return iter(
        [
            {"tx_id": str(i), "event_time": T0 + timedelta(seconds=s)}
            for i, s in enumerate(offsets_s)
        ]
    )


def test_held_to_clock_holds_events_beyond_the_lead_and_never_restamps() -> None:
    fake = FakeTime(T0)
    held = held_to_clock(
        at(0, 50, 600, 601), max_lead=timedelta(seconds=60), clock=fake.clock, sleep=fake.sleep
    )
    released = []
    for event in held:
        released.append((event["tx_id"], event_time(event), fake.now))
    assert fake.slept == [540.0, 1.0]
    assert released == [
        ("0", T0, T0),
        ("1", T0 + timedelta(seconds=50), T0),
        ("2", T0 + timedelta(seconds=600), T0 + timedelta(seconds=540)),
        ("3", T0 + timedelta(seconds=601), T0 + timedelta(seconds=541)),
    ]


def test_held_to_clock_passes_late_events_at_once() -> None:
    fake = FakeTime(T0 + timedelta(hours=1))
    held = held_to_clock(at(0, 10, 20), max_lead=timedelta(0), clock=fake.clock, sleep=fake.sleep)
    assert [e["tx_id"] for e in held] == ["0", "1", "2"]
    assert fake.slept == []


def test_held_to_clock_wants_datetimes() -> None:
    held = held_to_clock(iter([{"event_time": 123}]), max_lead=timedelta(0), clock=lambda: T0)
    with pytest.raises(SimulatorError, match="datetime"):
        next(held)
