"""The drift trigger: a retrain only on drift that stays, and not again too soon."""

from __future__ import annotations

from streams.drift import DriftStatus
from streams.feedback._drift import DriftTrigger
from tests.doubles import FakeClock


def _status(psi: float | None, reporter: str = "a") -> DriftStatus:
    return DriftStatus(reporter, "v1", 5000, psi, 0.1, at=0.0)


def _trigger(clock: FakeClock) -> DriftTrigger:
    return DriftTrigger(0.2, after_s=60, cooldown_s=600, clock=clock)


def test_fires_once_the_worst_process_stays_above_the_threshold_long_enough() -> None:
    clock = FakeClock()
    trigger = _trigger(clock)
    fired = []
    for _ in range(13):  # 0 s .. 60 s, one summary every 5 s
        fired.append(trigger.update([_status(0.05), _status(0.3, "b")]))
        clock.advance(5)

    assert fired == [False] * 12 + [True]


def test_a_dip_below_or_a_missing_figure_restarts_the_count() -> None:
    clock = FakeClock()
    trigger = _trigger(clock)
    trigger.update([_status(0.3)])
    clock.advance(50)
    assert trigger.sustained_s == 50
    assert not trigger.update([_status(0.19)])
    assert trigger.sustained_s == 0
    trigger.update([_status(0.3)])
    clock.advance(59)
    assert not trigger.update([_status(None)])  # no scored rows: not evidence of drift
    clock.advance(1)
    assert not trigger.update([])


def test_the_cooldown_holds_back_a_second_retrain() -> None:
    clock = FakeClock()
    trigger = _trigger(clock)
    trigger.update([_status(0.5)])
    clock.advance(60)
    assert trigger.update([_status(0.5)])
    for _ in range(10):  # drift goes on for another 100 s, inside the 600 s cooldown
        clock.advance(10)
        assert not trigger.update([_status(0.5)])
    clock.advance(500)  # the cooldown is over, and the drift has lasted all along
    assert trigger.update([_status(0.5)])
    clock.advance(10)
    assert not trigger.update([_status(0.5)])
