"""Each fraud pattern has the shape the issue describes, checked on a mid-size history."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.simulator._geography import haversine_km
from tests.unit.models.simulator.conftest import amount_in_euros


def _rows(history: pd.DataFrame, pattern: str) -> pd.DataFrame:
    rows = history[history["pattern"] == pattern]
    assert len(rows) > 0, pattern
    return rows


def _legit(history: pd.DataFrame) -> pd.DataFrame:
    return history[history["label"] == 0]


def _span_hours(times: pd.Series) -> float:
    return float((times.max() - times.min()).total_seconds() / 3600)


def test_card_testing_is_bursts_of_small_amounts_at_new_merchants(
    mid_history: pd.DataFrame,
) -> None:
    tests = _rows(mid_history, "card_testing")
    assert (tests["channel"] == "ecom").all()
    assert (tests["amount"].astype(float) < 5.0).all()
    # One fraudster device per burst: each burst is several tries within a short time.
    bursts = tests.groupby("device_id")
    assert (bursts.size() >= 5).all()
    assert (bursts["event_time"].agg(_span_hours) < 2).all()
    assert (bursts["card_id"].nunique() == 1).all()
    # The merchant was never used by that user before (in their genuine history).
    first_seen = (
        _legit(mid_history).groupby(["user_id", "merchant_id"])["event_time"].min().rename("seen")
    )
    joined = tests.join(first_seen, on=["user_id", "merchant_id"])
    assert (joined["seen"].isna() | (joined["seen"] > joined["event_time"])).all()
    # Fraudsters reuse a few lax merchants across many cards.
    assert tests["merchant_id"].nunique() < tests["card_id"].nunique()


def test_account_takeover_is_new_device_and_country_then_high_amounts(
    mid_history: pd.DataFrame,
) -> None:
    takeovers = _rows(mid_history, "account_takeover")
    legit = _legit(mid_history)
    assert (takeovers["channel"] == "ecom").all()
    assert (amount_in_euros(takeovers) >= 199.9).all()
    typical = amount_in_euros(legit).groupby(legit["user_id"]).median()
    assert (amount_in_euros(takeovers) > 3 * takeovers["user_id"].map(typical)).all()
    for _, row in takeovers.iterrows():
        before = legit[
            (legit["user_id"] == row["user_id"]) & (legit["event_time"] < row["event_time"])
        ]
        assert row["device_id"] not in set(before["device_id"].dropna())
        assert row["country"] not in set(before["country"])
    sessions = takeovers.groupby("device_id")
    assert sessions.size().between(2, 6).all()
    assert (sessions["country"].nunique() == 1).all()


def test_impossible_travel_implies_more_than_1000_km_per_hour(mid_history: pd.DataFrame) -> None:
    travels = _rows(mid_history, "impossible_travel").sort_values("event_time")
    assert (travels["channel"] != "ecom").all()
    located = _legit(mid_history).dropna(subset=["lat"]).sort_values("event_time")
    previous = pd.merge_asof(
        travels,
        located[["user_id", "event_time", "lat", "lon"]].rename(
            columns={"event_time": "prev_time", "lat": "prev_lat", "lon": "prev_lon"}
        ),
        left_on="event_time",
        right_on="prev_time",
        by="user_id",
        direction="backward",
    )
    assert previous["prev_time"].notna().all()
    km = haversine_km(
        previous["prev_lat"].to_numpy(),
        previous["prev_lon"].to_numpy(),
        previous["lat"].to_numpy(),
        previous["lon"].to_numpy(),
    )
    hours = (previous["event_time"] - previous["prev_time"]).dt.total_seconds().to_numpy() / 3600
    speed = km / np.maximum(hours, 1e-9)
    assert (speed > 1000).all()
    assert (km > 250).all()


def test_compromised_merchant_hits_many_users_at_few_merchants_over_days(
    mid_history: pd.DataFrame,
) -> None:
    breaches = _rows(mid_history, "compromised_merchant")
    per_merchant = breaches.groupby("merchant_id")
    assert breaches["merchant_id"].nunique() * 10 <= len(breaches)
    assert (per_merchant["user_id"].nunique() >= 10).all()
    assert (per_merchant["event_time"].agg(_span_hours) > 24).all()
    # Mostly the merchant's own customers are hit.
    customers = set(
        zip(_legit(mid_history)["user_id"], _legit(mid_history)["merchant_id"], strict=True)
    )
    regulars = [
        pair in customers for pair in zip(breaches["user_id"], breaches["merchant_id"], strict=True)
    ]
    assert np.mean(regulars) > 0.5


def test_spending_spree_follows_a_compromise(mid_history: pd.DataFrame) -> None:
    sprees = _rows(mid_history, "spending_spree")
    assert (amount_in_euros(sprees) >= 59.9).all()
    per_card = sprees.groupby("card_id")
    assert (per_card.size() >= 5).all()
    assert (per_card["event_time"].agg(_span_hours) < 24).all()
    compromises = mid_history[mid_history["pattern"].isin(["card_testing", "compromised_merchant"])]
    first_compromise = compromises.groupby("card_id")["event_time"].min()
    spree_start = per_card["event_time"].min()
    assert spree_start.index.isin(first_compromise.index).all()
    assert (spree_start > first_compromise.reindex(spree_start.index)).all()
