from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from models.exceptions import SimulatorError
from models.simulator import COLUMNS, PATTERNS, SimulatorConfig, live_events

LIVE_CONFIG = SimulatorConfig(users=200, merchants=80, seed=5)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


STEP = timedelta(microseconds=700)


def fake_clock(step: timedelta = STEP) -> Callable[[], datetime]:
    """A clock that advances a fixed step per reading: fully reproducible time."""
    ticks = itertools.count()
    return lambda: T0 + step * next(ticks)


def event_time(event: dict[str, object]) -> datetime:
    moment = event["event_time"]
    assert isinstance(moment, datetime)
    return moment


def take(count: int, config: SimulatorConfig = LIVE_CONFIG) -> list[dict[str, object]]:
    return list(itertools.islice(live_events(config, fake_clock()), count))


@pytest.fixture(scope="module")
def events() -> list[dict[str, object]]:
    return take(30_000)  # spans more than one pre-generated chunk


def test_events_carry_the_contract_and_the_labels(events: list[dict[str, object]]) -> None:
    for event in events[:50]:
        assert tuple(event) == COLUMNS
        assert isinstance(event["amount"], str)
        assert isinstance(event["event_time"], datetime)
    assert len({event["tx_id"] for event in events}) == len(events)


def test_event_times_increase_and_follow_the_clock(events: list[dict[str, object]]) -> None:
    times = [event_time(event) for event in events]
    assert all(a <= b for a, b in itertools.pairwise(times))
    last = times[-1]
    assert last.tzinfo == UTC
    # One reading per event (plus one at start), truncated to the millisecond.
    expected = T0 + STEP * len(events)
    assert expected - timedelta(milliseconds=1) <= last <= expected + STEP
    assert all(t.microsecond % 1000 == 0 for t in times)


def test_live_traffic_includes_every_pattern(events: list[dict[str, object]]) -> None:
    patterns = {event["pattern"] for event in events}
    assert set(PATTERNS) <= patterns
    fraud = sum(event["label"] == 1 for event in events)
    assert 0.003 < fraud / len(events) < 0.03


def test_same_seed_and_clock_same_stream() -> None:
    assert take(3000) == take(3000)
    other = take(3000, SimulatorConfig(users=200, merchants=80, seed=6))
    assert [e["card_id"] for e in other] != [e["card_id"] for e in take(3000)]


def test_a_restart_never_repeats_a_tx_id() -> None:
    first = itertools.islice(live_events(LIVE_CONFIG, fake_clock()), 100)
    later = T0 + timedelta(hours=1)
    again = itertools.islice(live_events(LIVE_CONFIG, lambda: later), 100)
    assert {e["tx_id"] for e in first}.isdisjoint({e["tx_id"] for e in again})


def test_a_clock_going_backwards_does_not_reorder_events() -> None:
    readings = iter([T0, T0 + timedelta(seconds=5), T0, T0 + timedelta(seconds=6)])
    stream = live_events(LIVE_CONFIG, lambda: next(readings))
    times = [event["event_time"] for event in itertools.islice(stream, 3)]
    assert times == [
        T0 + timedelta(seconds=5),
        T0 + timedelta(seconds=5),
        T0 + timedelta(seconds=6),
    ]


def test_other_time_zones_are_converted_to_utc() -> None:
    plus_two = T0.astimezone(timezone(timedelta(hours=2)))
    assert plus_two.hour == 14
    event = next(live_events(LIVE_CONFIG, lambda: plus_two))
    assert event["event_time"] == T0
    assert event_time(event).tzinfo == UTC


def test_a_naive_clock_is_refused() -> None:
    with pytest.raises(SimulatorError, match="timezone-aware"):
        next(live_events(LIVE_CONFIG, lambda: datetime(2026, 1, 1)))
