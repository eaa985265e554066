"""The feature vector: names, the replayer, and featurising a historical frame."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators import features as features_module
from operators.exceptions import FeatureInputError
from operators.features import FEATURE_NAMES, FeatureReplayer, features_for_frame
from operators.velocity import (
    MERCHANT_FEATURES,
    USER_FEATURES,
    MerchantVelocity,
    RecentIds,
    UserVelocity,
    VelocityEvent,
)
from tests.unit.operators.velocity._streams import DAY, MINUTE, START, arrivals

LATENESS_MS = 5 * MINUTE


def _frame(events: list[VelocityEvent]) -> pd.DataFrame:
    """The Transaction-shaped frame of ``events`` (amounts as decimal strings)."""
    return pd.DataFrame(
        {
            "tx_id": [e.tx_id for e in events],
            "user_id": [e.user_id for e in events],
            "merchant_id": [e.merchant_id for e in events],
            "amount": [f"{e.amount:.4f}" for e in events],
            "event_time": pd.to_datetime([e.event_ms for e in events], unit="ms", utc=True),
            "country": [e.country for e in events],
            "lat": [e.lat for e in events],
            "lon": [e.lon for e in events],
        }
    )


def _by_hand(events: list[VelocityEvent]) -> tuple[np.ndarray, list[bool]]:
    """What the dataflow does, step by step, with the public API: rows, repeats."""
    users: dict[str, UserVelocity] = {}
    merchants: dict[str, MerchantVelocity] = {}
    ids: dict[str, RecentIds] = {}
    rows, repeated = [], []
    for event in events:
        repeated.append(
            ids.setdefault(event.user_id, RecentIds(DAY, 2_048)).seen(event.tx_id, event.event_ms)
        )
        if repeated[-1]:
            rows.append([math.nan] * len(FEATURE_NAMES))
            continue
        user = users.setdefault(event.user_id, UserVelocity(LATENESS_MS)).update(event)
        merchant = merchants.setdefault(event.merchant_id, MerchantVelocity(LATENESS_MS))
        rows.append([*user.features.values(), *merchant.update(event).features.values(), math.nan])
    return np.array(rows, dtype=np.float64).reshape(len(events), len(FEATURE_NAMES)), repeated


def _assert_rows_equal(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, want)  # NaN == NaN here, every other bit equal


def test_feature_names_are_the_model_input_order() -> None:
    assert (*USER_FEATURES, *MERCHANT_FEATURES, "merchant_risk") == FEATURE_NAMES
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES) == 34
    assert FEATURE_NAMES[:3] == ("user_count_1m", "user_amount_sum_1m", "user_amount_mean_1m")
    assert FEATURE_NAMES[-6:] == (
        "amount",
        "merchant_count_1h",
        "merchant_count_24h",
        "merchant_distinct_users_1h",
        "merchant_amount_mean_24h",
        "merchant_risk",
    )


@st.composite
def _stream_with_repeats(draw: st.DrawFn) -> list[VelocityEvent]:
    events = draw(arrivals(LATENESS_MS, users=3, merchants=3))
    repeats = draw(st.lists(st.integers(0, len(events) - 1), max_size=3))
    for k in repeats:  # a re-delivery, later in the stream
        events.insert(draw(st.integers(k + 1, len(events))), events[k])
    return events


@settings(max_examples=40, deadline=None)
@given(_stream_with_repeats())
def test_replayer_and_frame_equal_the_dataflow_steps(events: list[VelocityEvent]) -> None:
    want, repeated = _by_hand(events)
    replay = FeatureReplayer(lateness_ms=LATENESS_MS).replay(events)
    _assert_rows_equal(replay.rows, want)
    assert replay.duplicate.tolist() == repeated
    # The frame path: the same rows, and a skipped repeat gets its first occurrence's row
    # (a repeat more than a day of event time later is not remembered: counted again).
    first_row: dict[str, int] = {}
    expected = want.copy()
    for k, event in enumerate(events):
        first_row.setdefault(event.tx_id, k)
        if repeated[k]:
            expected[k] = want[first_row[event.tx_id]]
        if first_row[event.tx_id] == k:
            assert not replay.late[k]  # only a forgotten re-delivery can come too late
    _assert_rows_equal(features_for_frame(_frame(events), lateness_ms=LATENESS_MS), expected)


def test_frame_without_optional_columns_gives_nan_location_and_no_countries() -> None:
    events = [VelocityEvent(f"t{k}", START + k * MINUTE, 3.5, "m1", "u1") for k in range(4)]
    frame = _frame(events).drop(columns=["country", "lat", "lon"])
    rows = features_for_frame(frame)
    column = {name: rows[:, k] for k, name in enumerate(FEATURE_NAMES)}
    assert np.isnan(column["user_travel_kmh"]).all()
    assert (column["user_distinct_countries_24h"] == 0).all()
    assert column["user_count_1h"].tolist() == [1, 2, 3, 4]
    assert np.isnan(column["merchant_risk"]).all()


def test_merchant_risk_comes_from_the_callable_at_event_time() -> None:
    events = [
        VelocityEvent("a", START, 1.0, "risky", "u1"),
        VelocityEvent("b", START + DAY, 1.0, "unknown", "u1"),
    ]
    asked: list[tuple[str, int]] = []

    def risk(merchant: str, at_ms: int) -> float | None:
        asked.append((merchant, at_ms))
        return 0.25 if merchant == "risky" else None

    rows = features_for_frame(_frame(events), merchant_risk=risk)
    assert rows[0, -1] == 0.25
    assert math.isnan(rows[1, -1])
    assert asked == [("risky", START), ("unknown", START + DAY)]


def test_late_events_are_reported_by_the_replayer() -> None:
    events = [VelocityEvent(f"t{k}", START + k * DAY, 1.0, "m1", "u1") for k in range(3)]
    stale = replace(events[0], tx_id="stale", event_ms=START - DAY)
    replay = FeatureReplayer().replay([*events, stale])
    assert replay.late.tolist() == [False, False, False, True]
    windows = replay.rows[-1, :18]  # count, sum, mean for the six windows
    assert not np.isnan(windows).any()
    assert windows[0] == 1.0  # nothing else in its minute


def test_eviction_during_a_replay_changes_no_feature(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each user comes back after 33 days: idle (30 days + lateness) in between.
    events = [
        VelocityEvent(f"t{k}", START + k * 11 * DAY, 2.0 + k, f"m{k % 2}", f"u{k % 3}")
        for k in range(12)
    ]
    events.append(VelocityEvent("last", START + 200 * DAY, 1.0, "m9", "u9"))
    kept = FeatureReplayer().replay(events).rows
    monkeypatch.setattr(features_module, "_EVICT_EVERY", 1)
    monkeypatch.setattr(features_module, "_FLUSH_EVERY", 1)
    replayer = FeatureReplayer()
    evicting = replayer.replay(events).rows
    np.testing.assert_array_equal(evicting, kept)
    assert list(replayer.users) == ["u9"]  # idle states were dropped along the way
    assert list(replayer.merchants) == ["m9"]


def test_empty_frame_gives_no_rows() -> None:
    assert features_for_frame(_frame([])).shape == (0, len(FEATURE_NAMES))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["amount"]), "lacks columns"),
        (lambda f: f.assign(event_time=f["event_time"].dt.tz_localize(None)), "tz-aware"),
        (lambda f: f.assign(amount=["1.0", "nan"]), "not finite"),
        (lambda f: f.assign(amount=["1.0", "abc"]), "not a decimal"),
        (lambda f: f.assign(user_id=["u1", None]), "user_id: missing"),
    ],
)
def test_unusable_frames_are_refused_with_the_reason(
    change: Callable[[pd.DataFrame], pd.DataFrame], message: str
) -> None:
    events = [VelocityEvent(f"t{k}", START + k, 1.0, "m1", "u1") for k in range(2)]
    with pytest.raises(FeatureInputError, match=message):
        features_for_frame(change(_frame(events)))
