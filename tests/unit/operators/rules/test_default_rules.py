"""The shipped rules file: it loads, and each rule fires where it should and nowhere else."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from operators.rules import DEFAULT_RULES_PATH, DEFAULT_SCHEMA, RuleSet

# An ordinary daytime card payment by a user with a steady history.
LEGIT: dict[str, Any] = {
    "user_count_1m": 1, "user_count_10m": 1, "user_count_1h": 2, "user_count_24h": 4,
    "user_count_7d": 15, "user_count_30d": 60,
    "user_amount_sum_1m": 42.5, "user_amount_sum_10m": 42.5, "user_amount_sum_1h": 80.0,
    "user_amount_sum_24h": 160.0, "user_amount_sum_7d": 600.0, "user_amount_sum_30d": 2400.0,
    "user_amount_mean_1m": 42.5, "user_amount_mean_10m": 42.5, "user_amount_mean_1h": 40.0,
    "user_amount_mean_24h": 40.0, "user_amount_mean_7d": 40.0, "user_amount_mean_30d": 40.0,
    "user_seconds_since_prev": 3600.0, "user_amount_ratio_30d": 1.06,
    "user_amount_zscore_30d": 0.2, "user_distinct_merchants_1h": 2,
    "user_distinct_merchants_24h": 3, "user_distinct_countries_24h": 1,
    "user_first_time_merchant": 0.0, "user_travel_kmh": 12.0, "is_night": 0.0,
    "is_weekend": 0.0, "amount": 42.5, "merchant_count_1h": 10, "merchant_count_24h": 240,
    "merchant_distinct_users_1h": 9, "merchant_amount_mean_24h": 50.0, "merchant_risk": 0.05,
    "lat": 48.85, "lon": 2.35,
    "user_id": "u1", "card_id": "c1", "merchant_id": "m1", "mcc": "5411", "currency": "EUR",
    "country": "FR", "channel": "pos", "device_id": None,
}  # fmt: skip

# For each default rule, the smallest change to the legit row that should make it fire.
DESIGNED: dict[str, dict[str, Any]] = {
    "card_testing": {
        "user_count_10m": 7, "user_amount_mean_10m": 1.5, "amount": 1.0,
        "user_first_time_merchant": 1.0, "channel": "ecom",
    },
    "impossible_travel": {"user_travel_kmh": 2500.0},
    "velocity_burst_1m": {"user_count_1m": 6, "user_count_10m": 6},
    "merchant_hopping_1h": {"user_distinct_merchants_1h": 7, "user_count_1h": 8},
    "amount_far_above_history": {"user_amount_zscore_30d": 9.0, "amount": 900.0},
    "amount_spike_ratio": {"user_amount_ratio_30d": 15.0, "amount": 600.0},
    "high_risk_merchant": {"merchant_risk": 0.85, "amount": 60.0},
    "very_high_risk_merchant_new_customer": {
        "merchant_risk": 0.97, "user_first_time_merchant": 1.0, "amount": 800.0,
    },
    "night_first_time_high_amount": {
        "is_night": 1.0, "user_first_time_merchant": 1.0, "amount": 1500.0,
    },
    "atm_high_amount_new_country": {
        "channel": "atm", "amount": 600.0, "user_distinct_countries_24h": 2,
    },
    "quasi_cash_first_time": {"mcc": "6051", "user_first_time_merchant": 1.0, "amount": 400.0},
    "merchant_surge": {
        "merchant_count_1h": 60, "merchant_count_24h": 300, "merchant_distinct_users_1h": 40,
    },
    "daily_spend_spike": {"user_amount_sum_24h": 2500.0, "user_amount_sum_30d": 3000.0},
}  # fmt: skip


def _batch(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    batch: dict[str, np.ndarray] = {}
    for name in DEFAULT_SCHEMA.numeric:
        batch[name] = np.array([row[name] for row in rows], dtype=np.float64)
    for name in DEFAULT_SCHEMA.strings:
        batch[name] = np.array([row[name] for row in rows], dtype=object)
    return batch


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return RuleSet.default()


def test_default_file_loads_with_a_sensible_mix(rules: RuleSet) -> None:
    assert rules.source == str(DEFAULT_RULES_PATH)
    assert 10 <= len(rules) <= 15
    actions = {rule.action for rule in rules}
    assert {"BLOCK", "REVIEW", "TAG"} <= actions
    assert any(rule.shadow for rule in rules)
    assert all(rule.description.strip() for rule in rules)


def test_every_default_rule_has_a_designed_row(rules: RuleSet) -> None:
    assert {rule.id for rule in rules} == set(DESIGNED)


def test_legit_row_fires_nothing(rules: RuleSet) -> None:
    hits = rules.evaluate(_batch([LEGIT]))
    assert hits.per_row() == [()]


def test_row_with_everything_missing_fires_nothing(rules: RuleSet) -> None:
    empty: dict[str, Any] = {name: float("nan") for name in DEFAULT_SCHEMA.numeric}
    empty.update(dict.fromkeys(DEFAULT_SCHEMA.strings))
    assert rules.evaluate(_batch([empty])).per_row() == [()]


@pytest.mark.parametrize("rule_id", sorted(DESIGNED))
def test_each_rule_fires_on_its_designed_row_only(rules: RuleSet, rule_id: str) -> None:
    designed = {**LEGIT, **DESIGNED[rule_id]}
    hits = rules.evaluate(_batch([LEGIT, designed]))
    assert hits.rule(rule_id).tolist() == [False, True]


def test_designed_rows_fire_only_their_own_rule_or_related_ones(rules: RuleSet) -> None:
    # Several patterns overlap by nature (a huge first payment at a risky merchant is also a
    # high-risk-merchant hit); this pins the overlaps so a threshold edit that makes rules
    # fire everywhere is noticed.
    overlaps = {"very_high_risk_merchant_new_customer": {"high_risk_merchant"}}
    ids = sorted(DESIGNED)
    hits = rules.evaluate(_batch([{**LEGIT, **DESIGNED[rule_id]} for rule_id in ids]))
    for rule_id, fired in zip(ids, hits.per_row(), strict=True):
        assert {hit.id for hit in fired} == {rule_id} | overlaps.get(rule_id, set())
