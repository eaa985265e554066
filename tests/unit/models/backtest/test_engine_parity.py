"""The backtest and the live path give the same features, scores and decisions.

The live side is driven as the dataflow drives it: the stateful user and merchant logic
(:mod:`operators.stateful`) over every transaction in event order, the merchant label
features decoded from the records the feedback service's :class:`MerchantLabelBook`
writes, and a :class:`DecisionEngine` with the backtest's champion and online model.
"""

from __future__ import annotations

import math
import time
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from models.backtest._history import NO_LABEL, Prepared, prepare, read_rows
from models.backtest._online import OnlineFeed
from operators.engine import DecisionEngine, FeaturedTx
from operators.enrichment import Enrichment
from operators.features import FEATURE_NAMES
from operators.merchant_labels import (
    MERCHANT_LABEL_FEATURES,
    MERCHANT_RISK_FEATURE,
    MerchantLabelBook,
    merchant_label_values,
)
from operators.rules import RuleSet
from operators.scoring import EnsembleScorer, OnlineScorer
from operators.stateful import build_merchant, build_user
from operators.velocity import DEFAULT_LATENESS_MS
from schemas import Transaction
from tests.unit.models.backtest.conftest import Run

KINDS = {"APPROVE": 0, "REVIEW": 1, "BLOCK": 2}
BATCH_DAY = pd.Timestamp("2026-01-20", tz="UTC")  # after the second model went live
ROWS = 12
_OPTIONAL = ("card_id", "mcc", "currency", "country", "lat", "lon", "channel", "device_id")


class _Rules:
    def get(self) -> RuleSet:
        return RuleSet.default()


class _Models:
    def __init__(self, champion: EnsembleScorer, online: OnlineScorer | None) -> None:
        self._champion, self._online = champion, online

    def current(self) -> EnsembleScorer:
        return self._champion

    def challenger(self) -> None:
        return None

    def online(self) -> OnlineScorer | None:
        return self._online


def _transaction(row: dict[str, Any]) -> Transaction:
    fields: dict[str, Any] = {
        name: row[name] for name in _OPTIONAL if name in row and not pd.isna(row[name])
    }
    return Transaction(
        tx_id=row["tx_id"], user_id=row["user_id"], merchant_id=row["merchant_id"],
        amount=Decimal(row["amount"]), event_time=row["event_time"].to_pydatetime(), **fields,
    )  # fmt: skip


def _live_velocity(frame: pd.DataFrame, stop: int) -> list[FeaturedTx]:
    """Rows ``:stop`` through the dataflow's per-user then per-merchant logic, in order."""
    users: dict[str, Any] = {}
    merchants: dict[str, Any] = {}
    new_user, new_merchant = build_user(DEFAULT_LATENESS_MS), build_merchant(DEFAULT_LATENESS_MS)
    items = []
    for row in frame.iloc[:stop].to_dict("records"):
        tx = _transaction(row)
        item = FeaturedTx(tx=tx, features={}, produced_ms=0)
        user = users.get(tx.user_id) or users.setdefault(tx.user_id, new_user(None))
        user.process([item])
        merchant = merchants.get(tx.merchant_id) or merchants.setdefault(
            tx.merchant_id, new_merchant(None)
        )
        merchant.process([item])
        items.append(item)
    return items


def _live_merchant_labels(prepared: Prepared, rows: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Each row's merchant label features from the record a label book writes at its event."""
    book = MerchantLabelBook()
    frame = prepared.frame
    newest = int(prepared.event_ms[rows].max())
    for row in np.flatnonzero((prepared.labels != NO_LABEL) & (prepared.known_ms < newest)):
        book.apply(
            frame["tx_id"].iat[row], frame["merchant_id"].iat[row], int(prepared.event_ms[row]),
            bool(prepared.labels[row] == 1), int(prepared.known_ms[row]),
        )  # fmt: skip
    values = []
    for row in rows:
        merchant, at = frame["merchant_id"].iat[row], int(prepared.event_ms[row])
        values.append(merchant_label_values(book.records(at, [merchant])[merchant], at))
    return np.array(values, dtype=np.float64)


@pytest.fixture(scope="module")
def prepared(backtest: Run) -> Prepared:
    return prepare(read_rows(backtest.config), backtest.config, time.perf_counter)


@pytest.fixture(scope="module")
def picked(prepared: Prepared) -> np.ndarray[Any, Any]:
    first = int(np.searchsorted(prepared.event_ms, BATCH_DAY.value // 1_000_000))
    return np.arange(first + 40, first + 40 + ROWS)


@pytest.fixture(scope="module")
def live_items(prepared: Prepared, picked: np.ndarray[Any, Any]) -> list[FeaturedTx]:
    return _live_velocity(prepared.frame, int(picked[-1]) + 1)


def test_velocity_features_equal_the_dataflow_operators(
    prepared: Prepared, picked: np.ndarray[Any, Any], live_items: list[FeaturedTx]
) -> None:
    items = live_items
    risk = FEATURE_NAMES.index("merchant_risk")
    for row in picked:
        live = [items[row].features.get(name, math.nan) for name in FEATURE_NAMES]
        np.testing.assert_array_equal(
            np.delete(np.array(live), risk), np.delete(prepared.features[row], risk)
        )


def test_merchant_label_features_equal_the_records_the_scorer_reads(
    prepared: Prepared, picked: np.ndarray[Any, Any]
) -> None:
    live = _live_merchant_labels(prepared, picked)
    np.testing.assert_allclose(live, prepared.merchant_labels[picked], rtol=1e-12, equal_nan=True)
    risk = FEATURE_NAMES.index("merchant_risk")
    source = MERCHANT_LABEL_FEATURES.index(MERCHANT_RISK_FEATURE)
    np.testing.assert_array_equal(prepared.features[picked, risk], live[:, source])


def test_the_live_engine_makes_the_backtests_decisions(
    backtest: Run, prepared: Prepared, picked: np.ndarray[Any, Any], live_items: list[FeaturedTx]
) -> None:
    decisions = backtest.decisions.iloc[picked]
    version = decisions["model_version"].iat[0]
    assert version is not None and (decisions["model_version"] == version).all()
    champion = EnsembleScorer.load(backtest.folder / "models" / version)
    feed = OnlineFeed(prepared, backtest.config.online_labels)
    codes = backtest.decisions["decision"].map(KINDS).to_numpy(dtype=np.int8)
    feed.learn_until(BATCH_DAY.value // 1_000_000, codes)
    online = feed.scorer(BATCH_DAY.value // 1_000_000)
    assert online is not None

    items = [live_items[row] for row in picked]
    labels = _live_merchant_labels(prepared, picked)
    risk = labels[:, MERCHANT_LABEL_FEATURES.index(MERCHANT_RISK_FEATURE)]
    enrichment = Enrichment(
        merchant_risk=risk, allow=np.zeros(ROWS, dtype=bool), deny=np.zeros(ROWS, dtype=bool),
        merchant_labels=labels,
    )  # fmt: skip
    engine = DecisionEngine(
        _Rules(), _Models(champion, online), model_budget_s=60.0,
        online_weight=backtest.config.online_weight,
    )  # fmt: skip
    try:
        outcome = engine.decide(items, enrichment)
    finally:
        engine.close()
    live = pd.DataFrame(outcome.decisions)
    np.testing.assert_allclose(live["score"], decisions["score"], rtol=1e-12)
    online_scores = [payload["member_scores"]["online"] for payload in outcome.decisions]
    np.testing.assert_allclose(online_scores, decisions["online_score"], rtol=1e-6)
    assert live["decision"].tolist() == decisions["decision"].tolist()
    assert live["reasons"].tolist() == [list(r) for r in decisions["reasons"]]
    assert live["model_version"].tolist() == decisions["model_version"].tolist()
    fired = [[hit["id"] for hit in hits if not hit["shadow"]] for hits in live["rules_fired"]]
    assert fired == [list(r) for r in decisions["rules_fired"]]
