"""Fraud in the live stream keeps the history's shape although windows are short.

Live windows of a large population last minutes, while a breach lasts days and a spree
comes hours after the theft: episodes must run on past their window, and a breach must
still hit the shop's own customers.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from models.simulator import SimulatorConfig, live_events

_START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_DAYS = 36
_SETTLE_DAYS = 7  # a breach lasts at most six days, a spree a few hours


def _span_hours(times: pd.Series) -> float:
    return float((times.max() - times.min()).total_seconds() / 3600)


@pytest.fixture(scope="module")
def live() -> pd.DataFrame:
    config = SimulatorConfig(users=400, merchants=100, seed=4, fraud_rate=0.02)

    def clock() -> datetime:
        return _START

    end = _START + timedelta(days=_DAYS)

    def before_end(event: dict[str, object]) -> bool:
        moment = event["event_time"]
        assert isinstance(moment, datetime)
        return moment < end

    frame = pd.DataFrame(itertools.takewhile(before_end, live_events(config, clock)))
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
    return frame


def _settled(rows: pd.DataFrame, key: str) -> pd.DataFrame:
    """Episodes that began early enough to be over before the frame ends."""
    first = rows.groupby(key)["event_time"].transform("min")
    return rows[first < pd.Timestamp(_START + timedelta(days=_DAYS - _SETTLE_DAYS))]


def test_breaches_last_days_and_hit_the_shops_customers(live: pd.DataFrame) -> None:
    breaches = _settled(live[live["pattern"] == "compromised_merchant"], "merchant_id")
    assert breaches["merchant_id"].nunique() >= 3
    per_merchant = breaches.groupby("merchant_id")
    assert (per_merchant["user_id"].nunique() >= 10).all()
    assert (per_merchant["event_time"].agg(_span_hours) > 24).all()
    pair = ["user_id", "merchant_id"]
    customers = pd.MultiIndex.from_frame(live.loc[live["label"] == 0, pair])
    assert np.mean(pd.MultiIndex.from_frame(breaches[pair]).isin(customers)) > 0.5


def test_sprees_follow_a_compromise_by_hours(live: pd.DataFrame) -> None:
    sprees = _settled(live[live["pattern"] == "spending_spree"], "card_id")
    per_card = sprees.groupby("card_id")
    assert per_card.ngroups >= 5
    assert (per_card.size() >= 5).all()
    compromises = live[live["pattern"].isin(["card_testing", "compromised_merchant"])]
    first_compromise = compromises.groupby("card_id")["event_time"].min()
    spree_start = per_card["event_time"].min()
    followed = spree_start.index.isin(first_compromise.index)
    assert followed.mean() > 0.8  # the rest drew a card at random, as in small histories
    gap = spree_start[followed] - first_compromise.reindex(spree_start.index[followed])
    assert (gap >= pd.Timedelta(hours=1)).all()


def test_fraud_spills_over_window_ends_in_order(live: pd.DataFrame) -> None:
    assert live["event_time"].is_monotonic_increasing
    fraud_rate = float(live["label"].mean())
    assert 0.012 < fraud_rate < 0.03  # target 0.02
