"""The replay schedule, its speed parser and pacing loop, and the command's refusals."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from streams.cli import app
from streams.replay import (
    MAX_SPEED,
    ReplayError,
    Schedule,
    Speed,
    describe_span,
    paced,
    parse_moment,
    parse_speed,
)

T0 = 1_522_540_800_000  # 2018-04-01T00:00:00Z


# -- parse_speed -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "factor"),
    [("60x", 60.0), ("1x", 1.0), ("1.5x", 1.5), ("0.5X", 0.5), (" 3600x ", 3600.0)],
)
def test_parse_speed_reads_factors(text: str, factor: float) -> None:
    assert parse_speed(text) == Speed(factor)


@pytest.mark.parametrize("text", ["max", "MAX", " Max "])
def test_parse_speed_reads_max(text: str) -> None:
    speed = parse_speed(text)
    assert speed is MAX_SPEED
    assert speed.is_max
    assert str(speed) == "max"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("60", "did you mean 60x?"),
        ("fast", "60x"),
        ("x", "60x"),
        ("60xx", "60x"),
        ("", "60x"),
        ("0x", "positive"),
        ("-2x", "positive"),
        ("nanx", "positive"),
        ("infx", "use max"),
    ],
)
def test_parse_speed_refuses_with_a_clear_message(text: str, expected: str) -> None:
    with pytest.raises(ReplayError, match="--speed") as caught:
        parse_speed(text)
    assert expected in str(caught.value)
    assert repr(text) in str(caught.value)


def test_speed_prints_as_typed() -> None:
    assert str(parse_speed("60x")) == "60x"
    assert str(parse_speed("1.5x")) == "1.5x"


# -- parse_moment ------------------------------------------------------------------------
def test_parse_moment_takes_dates_as_midnight_utc_and_converts_zones() -> None:
    assert parse_moment("2018-07-01", "--start") == datetime(2018, 7, 1, tzinfo=UTC)
    assert parse_moment("2018-07-01T12:30", "--end") == datetime(2018, 7, 1, 12, 30, tzinfo=UTC)
    assert parse_moment("2018-07-01T12:00+02:00", "--end") == datetime(2018, 7, 1, 10, tzinfo=UTC)


def test_parse_moment_names_the_option() -> None:
    with pytest.raises(ReplayError, match="--end 'yesterday'"):
        parse_moment("yesterday", "--end")


# -- Schedule ----------------------------------------------------------------------------
def test_at_60x_an_event_one_minute_after_the_first_is_due_one_second_after_start() -> None:
    schedule = Schedule.of([T0, T0 + 60_000, T0 + 3_600_000], parse_speed("60x"))

    assert schedule.due_s().tolist() == [0.0, 1.0, 60.0]
    assert schedule.span_s == 3600
    assert schedule.wall_s == 60


def test_at_max_every_record_is_due_at_the_start() -> None:
    schedule = Schedule.of([T0, T0 + 60_000, T0 + 86_400_000], MAX_SPEED)

    assert schedule.due_s().tolist() == [0.0, 0.0, 0.0]
    assert schedule.wall_s == 0


def test_out_of_order_input_is_sorted_stably() -> None:
    times = [T0 + 5_000, T0, T0 + 5_000, T0 + 1_000, T0]

    schedule = Schedule.of(times, parse_speed("1x"))

    assert schedule.order.tolist() == [1, 4, 3, 0, 2]  # equal times keep the file's order
    assert schedule.event_ms.tolist() == sorted(times)
    assert schedule.due_s().tolist() == [0.0, 0.0, 1.0, 5.0, 5.0]
    assert schedule.first_ms == T0
    assert schedule.last_ms == T0 + 5_000


def test_head_keeps_the_earliest_events() -> None:
    schedule = Schedule.of([T0 + 3, T0 + 1, T0 + 2], MAX_SPEED).head(2)

    assert len(schedule) == 2
    assert schedule.order.tolist() == [1, 2]
    with pytest.raises(ReplayError, match="--count"):
        schedule.head(0)


def test_an_empty_schedule_is_refused() -> None:
    with pytest.raises(ReplayError, match="nothing to replay"):
        Schedule.of([], MAX_SPEED)


def test_restamp_starts_at_now_and_divides_offsets_by_the_speed() -> None:
    schedule = Schedule.of([T0 + 120_000, T0, T0 + 60_000], parse_speed("60x"))
    now_ms = 1_790_000_000_000

    stamps = [schedule.stamp_ms(i, start_ms=now_ms, sent_ms=now_ms + 999) for i in range(3)]

    assert stamps == [now_ms, now_ms + 1_000, now_ms + 2_000]


def test_restamp_at_max_uses_the_send_time() -> None:
    schedule = Schedule.of([T0, T0 + 3_600_000], MAX_SPEED)

    assert schedule.stamp_ms(1, start_ms=1_000, sent_ms=1_234) == 1_234


@given(
    st.lists(st.integers(min_value=0, max_value=10**11), min_size=1, max_size=200),
    st.floats(min_value=0.01, max_value=1e6),
)
def test_due_times_follow_event_times_divided_by_the_speed(times: list[int], factor: float) -> None:
    schedule = Schedule.of([T0 + t for t in times], Speed(factor))
    dues = schedule.due_s()

    assert schedule.event_ms.tolist() == sorted(T0 + t for t in times)
    assert dues[0] == 0
    assert np.all(np.diff(dues) >= 0)
    expected = (np.sort(np.array(times)) - min(times)) / 1000 / factor
    assert np.allclose(dues, expected, rtol=1e-12, atol=1e-9)
    stamps = [schedule.stamp_ms(i, start_ms=0, sent_ms=0) for i in range(len(schedule))]
    assert stamps == sorted(stamps)
    assert all(abs(s / 1000 - d) <= 0.001 for s, d in zip(stamps, dues, strict=True))


# -- paced -------------------------------------------------------------------------------
class FakeClock:
    """A clock that only moves when slept on, or when a test makes a send take time."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


def test_paced_yields_each_record_at_its_due_time_without_oversleeping() -> None:
    clock = FakeClock()
    schedule = Schedule.of([T0, T0 + 6_000, T0 + 6_000, T0 + 12_000], parse_speed("60x"))
    sent_at = {}

    for position in paced(schedule, clock=clock, sleep=clock.sleep, max_sleep_s=0.05):
        sent_at[position] = clock.now - 100.0

    assert sent_at == pytest.approx({0: 0.0, 1: 0.1, 2: 0.1, 3: 0.2})
    assert max(clock.sleeps) <= 0.05
    assert sum(clock.sleeps) == pytest.approx(0.2)  # slept exactly until each due time


def test_paced_catches_up_after_a_slow_send_instead_of_drifting() -> None:
    clock = FakeClock()
    schedule = Schedule.of([T0 + 1_000 * i for i in range(6)], parse_speed("1x"))
    sent_at = {}

    for position in paced(schedule, clock=clock, sleep=clock.sleep):
        sent_at[position] = clock.now - 100.0
        if position == 1:
            clock.now += 2.5  # a send that stalls 2.5 s

    # 2 and 3 were overdue and go at once; 4 and 5 are back on the original schedule.
    assert sent_at == pytest.approx({0: 0.0, 1: 1.0, 2: 3.5, 3: 3.5, 4: 4.0, 5: 5.0})


def test_paced_counts_from_the_given_start() -> None:
    clock = FakeClock()
    schedule = Schedule.of([T0, T0 + 1_000], parse_speed("1x"))

    sent_at = [clock.now for _ in paced(schedule, start=99.5, clock=clock, sleep=clock.sleep)]

    assert sent_at == pytest.approx([100.0, 100.5])


def test_paced_at_max_never_sleeps() -> None:
    clock = FakeClock()
    schedule = Schedule.of([T0, T0 + 86_400_000, T0 + 2 * 86_400_000], MAX_SPEED)

    assert list(paced(schedule, clock=clock, sleep=clock.sleep)) == [0, 1, 2]
    assert clock.sleeps == []


def test_paced_stops_when_idle_says_so() -> None:
    clock = FakeClock()
    schedule = Schedule.of([T0, T0 + 10_000, T0 + 20_000], parse_speed("1x"))

    sent = list(paced(schedule, clock=clock, sleep=clock.sleep, idle=lambda: clock.now >= 103))

    assert sent == [0]
    assert 103 <= clock.now < 103.1


def test_describe_span() -> None:
    assert describe_span(4.25) == "4.2s"
    assert describe_span(125) == "2m 5s"
    assert describe_span(2 * 3600 + 300) == "2h 5m"
    assert describe_span(135 * 86_400 + 23 * 3600 + 59) == "135d 23h"
    assert describe_span(0) == "0.0s"


# -- the command's refusals (they come before any broker is contacted) -------------------
def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["replay", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


@pytest.fixture
def history(tmp_path: Path) -> Path:
    path = tmp_path / "history.csv"
    pd.DataFrame(
        {
            "TRANSACTION_ID": [1, 2],
            "TX_DATETIME": ["2018-04-01 00:00:31", "2018-04-01 00:02:10"],
            "CUSTOMER_ID": [596, 4961],
            "TERMINAL_ID": [3156, 3412],
            "TX_AMOUNT": [57.16, 81.51],
        }
    ).to_csv(path, index=False)
    return path


MAPPING = [
    "--map", "tx_id=TRANSACTION_ID", "--map", "user_id=CUSTOMER_ID",
    "--map", "merchant_id=TERMINAL_ID", "--map", "amount=TX_AMOUNT",
    "--map", "event_time=TX_DATETIME",
]  # fmt: skip


def test_a_bad_speed_is_a_usage_error(history: Path) -> None:
    code, output = run(str(history), "--speed", "fast", *MAPPING)

    assert code == 2
    assert "--speed 'fast'" in output
    assert "max" in output


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.parquet"

    code, output = run(str(missing), "--speed", "max")

    assert code == 1
    assert "no such file" in output
    assert "nope.parquet" in output


def test_unmapped_columns_are_listed_with_the_way_out(history: Path) -> None:
    code, output = run(str(history), "--speed", "max")

    assert code == 1
    assert "missing columns" in output
    assert "--map field=COLUMN" in output


def test_a_window_without_events_is_refused(history: Path) -> None:
    code, output = run(str(history), "--speed", "max", "--start", "2019-01-01", *MAPPING)

    assert code == 1
    assert "nothing to replay" in output
    assert "2018-04-01" in output


def test_a_bad_date_is_a_usage_error(history: Path) -> None:
    code, output = run(str(history), "--speed", "max", "--end", "soon", *MAPPING)

    assert code == 2
    assert "--end 'soon'" in output
