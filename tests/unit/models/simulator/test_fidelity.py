"""Live users behave like the history's users: what velocity features and rules see.

The population is sized by population_for_rate, as ``fraudstream produce`` sizes it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from models.simulator import SimulatorConfig, live_events, population_for_rate, simulate_history
from models.simulator._geography import haversine_km

_USERS, _MERCHANTS = population_for_rate(0.05)  # about 1,100 users
_CONFIG = SimulatorConfig(users=_USERS, merchants=_MERCHANTS, seed=21, days=7)
_MINUTE_MS = 60_000


@dataclass(frozen=True)
class Velocity:
    median_gap_s: float
    sub_minute_gaps: float  # share of a user's consecutive events less than a minute apart
    five_in_a_minute: float  # share of events with user_count_1m >= 5
    faster_than_a_plane: float  # share of located consecutive pairs above 900 km/h
    night: float  # share of events at UTC hours 0-5


def velocity(frame: pd.DataFrame) -> Velocity:
    frame = frame.sort_values(["user_id", "event_time"], kind="stable")
    times = pd.to_datetime(frame["event_time"], utc=True)
    ms = (times - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    ms = ms.to_numpy(np.int64)
    user = pd.factorize(frame["user_id"])[0].astype(np.int64)
    same_user = user[1:] == user[:-1]
    gap_s = np.diff(ms)[same_user] / 1000
    key = user * 10**14 + ms  # sorted; users never fall within a minute of each other
    in_last_minute = np.arange(key.size) - np.searchsorted(key, key - _MINUTE_MS, "right") + 1
    lat, lon = frame["lat"].to_numpy(float), frame["lon"].to_numpy(float)
    km = haversine_km(lat[:-1], lon[:-1], lat[1:], lon[1:])
    located = same_user & np.isfinite(km)
    hours = np.maximum(np.diff(ms)[located], 1000) / 3_600_000
    return Velocity(
        median_gap_s=float(np.median(gap_s)),
        sub_minute_gaps=float(np.mean(gap_s < 60)),
        five_in_a_minute=float(np.mean(in_last_minute >= 5)),
        faster_than_a_plane=float(np.mean(km[located] / hours > 900)),
        night=float(np.mean(times.dt.hour < 6)),
    )


@pytest.fixture(scope="module")
def history() -> Velocity:
    return velocity(simulate_history(_CONFIG))


@pytest.fixture(scope="module")
def live() -> Velocity:
    def clock() -> datetime:
        return datetime(2026, 3, 4, 9, 30, tzinfo=UTC)

    # Pulled as fast as Python goes, far faster than real time.
    events = itertools.islice(live_events(_CONFIG, clock), 30_000)
    return velocity(pd.DataFrame(events))


def test_per_user_gaps_match_the_history(history: Velocity, live: Velocity) -> None:
    assert history.median_gap_s > 3600  # a few transactions a day
    assert 0.5 < live.median_gap_s / history.median_gap_s < 2
    assert live.sub_minute_gaps < 2 * history.sub_minute_gaps + 0.002


def test_velocity_rules_fire_as_rarely_as_in_the_history(history: Velocity, live: Velocity) -> None:
    assert history.five_in_a_minute < 0.005
    assert live.five_in_a_minute < 0.005
    assert history.faster_than_a_plane < 0.01
    assert live.faster_than_a_plane < 0.01


def test_the_daily_rhythm_matches_the_history(history: Velocity, live: Velocity) -> None:
    assert 0.03 < history.night < 0.15
    assert live.night == pytest.approx(history.night, abs=0.02)
