from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.simulator import COLUMNS, LEGIT, PATTERNS, SimulatorConfig, simulate_history
from models.simulator._geography import COUNTRIES, COUNTRY_CURRENCY
from tests.unit.models.simulator.conftest import MID_CONFIG, looks_like_pan

_ID_PATTERNS = {
    "tx_id": r"tx-\d+-n\d{10}",
    "user_id": r"u\d{6,}",
    "card_id": r"card-[0-9a-f]{8}",
    "merchant_id": r"m\d{5,}",
    "mcc": r"\d{4}",
    "amount": r"\d+\.\d{2}",
    "currency": r"[A-Z]{3}",
    "country": r"[A-Z]{2}",
}


def assert_valid_history(frame: pd.DataFrame, config: SimulatorConfig) -> None:
    """Everything the Transaction contract and the issue promise about any history."""
    assert tuple(frame.columns) == COLUMNS
    assert str(frame["event_time"].dtype) == "datetime64[ms, UTC]"
    assert frame["tx_id"].is_unique
    # Sorted by event time, ties by tx_id.
    keys = list(zip(frame["event_time"], frame["tx_id"], strict=True))
    assert keys == sorted(keys)
    end = config.start + timedelta(days=config.days)
    assert (frame["event_time"] >= config.start).all()
    assert (frame["event_time"] < end).all()
    for column, pattern in _ID_PATTERNS.items():
        assert frame[column].str.fullmatch(pattern).all(), column
    assert frame["device_id"].dropna().str.fullmatch(r"dev-[0-9a-f]{8}").all()
    assert (frame["amount"].astype(float) > 0).all()
    assert set(frame["channel"]) <= {"pos", "ecom", "atm"}
    assert set(frame["country"]) <= set(COUNTRIES)
    assert set(frame["currency"]) <= set(COUNTRY_CURRENCY.values())
    # Card-present rows have a place and no device; online rows a device unless the
    # merchant charged the card by itself (a breached merchant does exactly that).
    located = frame["channel"] != "ecom"
    assert frame.loc[located, ["lat", "lon"]].notna().all().all()
    assert frame.loc[located, "device_id"].isna().all()
    assert frame.loc[~located, ["lat", "lon"]].isna().all().all()
    merchant_initiated = frame["pattern"] == "compromised_merchant"
    assert frame.loc[~located & ~merchant_initiated, "device_id"].notna().all()
    assert frame["lat"].dropna().between(-90, 90).all()
    assert frame["lon"].dropna().between(-180, 180).all()
    assert (frame["schema_version"] == 1).all()
    assert set(frame["pattern"]) <= {LEGIT, *PATTERNS}
    assert ((frame["label"] == 1) == (frame["pattern"] != LEGIT)).all()
    for column in ("tx_id", "user_id", "card_id", "merchant_id", "device_id"):
        assert not frame[column].dropna().map(looks_like_pan).any(), column


def test_mid_size_history_is_valid(mid_history: pd.DataFrame) -> None:
    assert_valid_history(mid_history, MID_CONFIG)
    assert mid_history["user_id"].nunique() == MID_CONFIG.users


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    config = SimulatorConfig(users=80, merchants=30, days=5, seed=3)
    first, again = simulate_history(config), simulate_history(config)
    pd.testing.assert_frame_equal(first, again)
    other = simulate_history(SimulatorConfig(users=80, merchants=30, days=5, seed=4))
    assert not first.equals(other)
    assert set(first["card_id"]).isdisjoint(set(other["card_id"]))


def test_fraud_rate_is_near_the_target(mid_history: pd.DataFrame) -> None:
    assert 0.005 <= mid_history["label"].mean() <= 0.01


def test_every_pattern_is_present(mid_history: pd.DataFrame) -> None:
    counts = mid_history["pattern"].value_counts()
    for pattern in PATTERNS:
        assert counts.get(pattern, 0) >= 10, pattern


def test_a_higher_target_rate_gives_more_fraud() -> None:
    config = SimulatorConfig(users=300, merchants=100, days=14, seed=5)
    low = simulate_history(config)["label"].mean()
    high = simulate_history(replace(config, fraud_rate=0.05))
    assert 0.03 <= high["label"].mean() <= 0.07
    assert low < 0.015


def test_daily_and_weekly_rhythm(mid_history: pd.DataFrame) -> None:
    legit = mid_history[mid_history["label"] == 0]
    europe = legit[legit["currency"] == "EUR"]  # one time zone, so UTC hours are comparable
    by_hour = europe["event_time"].dt.hour.value_counts()
    assert by_hour[17] > 5 * by_hour[2]  # evenings are busy, nights are quiet
    days = legit["event_time"].dt.normalize()
    rows_per_day = legit.groupby(days).size()
    per_weekday = rows_per_day.groupby(rows_per_day.index.day_of_week).mean()
    assert per_weekday[5] > per_weekday[6] * 1.3  # Saturday beats Sunday


def test_users_keep_their_habits(mid_history: pd.DataFrame) -> None:
    legit = mid_history[(mid_history["label"] == 0) & (mid_history["channel"] == "pos")]
    home_share = legit.groupby("user_id")["country"].agg(
        lambda c: c.value_counts().iloc[0] / len(c)
    )
    assert home_share.median() == 1.0  # most users never leave home
    assert (home_share < 1.0).any()  # ... but some travel
    merchants_per_user = legit.groupby("user_id")["merchant_id"].nunique()
    rows_per_user = legit.groupby("user_id").size()
    assert (merchants_per_user / rows_per_user).median() < 0.6  # favourite shops come back


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    users=st.integers(10, 60),
    merchants=st.integers(10, 60),
    days=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
    fraud_rate=st.floats(0.001, 0.2),
    start_offset_minutes=st.integers(0, 60 * 24 * 365),
)
def test_any_small_config_gives_a_valid_sorted_history(
    users: int, merchants: int, days: int, seed: int, fraud_rate: float, start_offset_minutes: int
) -> None:
    config = SimulatorConfig(
        users=users,
        merchants=merchants,
        days=days,
        seed=seed,
        fraud_rate=fraud_rate,
        start=MID_CONFIG.start + timedelta(minutes=start_offset_minutes),
    )
    frame = simulate_history(config)
    assert len(frame) > 0
    assert_valid_history(frame, config)


def test_progress_stages_are_reported_in_order() -> None:
    stages: list[str] = []
    simulate_history(SimulatorConfig(users=20, merchants=10, days=1), on_stage=stages.append)
    assert stages == [
        "population",
        "genuine transactions",
        "fraud episodes",
        "ordering",
        "rendering",
    ]
