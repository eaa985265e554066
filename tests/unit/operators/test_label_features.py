"""Label features: a label is used only once it is known, and the frame path equals the class."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.exceptions import FeatureInputError
from operators.features import FEATURE_NAMES
from operators.label_features import (
    LABEL_FEATURES,
    KnownLabels,
    label_features_for_frame,
)

DAY = 86_400_000
DELAY = 7 * DAY
START = 1_532_476_800_000  # 2018-07-25T00:00:00Z


def _frame(rows: Sequence[tuple[str, str, str, int, object]]) -> pd.DataFrame:
    """Rows of (tx_id, user_id, merchant_id, event_ms, label)."""
    return pd.DataFrame(
        {
            "tx_id": [row[0] for row in rows],
            "user_id": [row[1] for row in rows],
            "merchant_id": [row[2] for row in rows],
            "event_time": pd.to_datetime([row[3] for row in rows], unit="ms", utc=True),
            "label": [row[4] for row in rows],
        }
    )


def _named(values: np.ndarray | list[float]) -> dict[str, float]:
    return dict(zip(LABEL_FEATURES, (float(v) for v in values), strict=True))


def _replay(frame: pd.DataFrame, delay: int) -> np.ndarray:
    """The class fed as the frame function promises: labels up front, rows in order."""
    state = KnownLabels()
    utc = frame["event_time"].dt.tz_convert(None)
    millis = utc.to_numpy(dtype="datetime64[ms]").astype(np.int64).tolist()
    amounts = (
        frame["amount"].astype(float).tolist() if "amount" in frame else [math.nan] * len(frame)
    )
    for row, event_ms, amount in zip(frame.itertuples(), millis, amounts, strict=True):
        if not pd.isna(row.label):
            known_at = event_ms + delay
            label = int(row.label)
            state.observe_label(
                row.tx_id, row.user_id, row.merchant_id, event_ms, label, known_at, amount
            )
    values = []
    for row, event_ms, amount in zip(frame.itertuples(), millis, amounts, strict=True):
        values.append(state.features(row.user_id, row.merchant_id, int(event_ms), amount))
        state.observe_transaction(row.user_id, row.merchant_id)
    return np.array(values, dtype=np.float64).reshape(len(frame), len(LABEL_FEATURES))


def test_names_are_unique_and_apart_from_the_velocity_vector() -> None:
    assert len(set(LABEL_FEATURES)) == len(LABEL_FEATURES)
    assert not set(LABEL_FEATURES) & set(FEATURE_NAMES)


@pytest.mark.parametrize("path", ["class", "frame"])
def test_a_fraud_is_invisible_before_its_label_is_known_and_visible_after(path: str) -> None:
    frame = _frame(
        [
            ("f", "u1", "M", START, 1),  # fraud at M at t0, known at t0 + 7d
            ("early", "u2", "M", START + 6 * DAY, 0),
            ("at-known", "u3", "M", START + 7 * DAY, 0),  # strictly before: not yet
            ("late", "u4", "M", START + 8 * DAY, 0),
        ]
    )
    rows = label_features_for_frame(frame, DELAY) if path == "frame" else _replay(frame, DELAY)
    for early in (_named(rows[1]), _named(rows[2])):
        assert early["merchant_known_labels_28d"] == 0
        assert math.isnan(early["merchant_known_fraud_share_28d"])
        assert math.isnan(early["merchant_seconds_since_known_fraud"])
        assert math.isnan(early["merchant_fraud_run_share"])
        assert early["merchant_fraud_run_frauds"] == 0
    late = _named(rows[3])
    assert late["merchant_known_labels_1d"] == 1  # known at t0 + 7d, inside [at - 1d, at)
    assert late["merchant_known_fraud_share_1d"] == 1.0
    assert late["merchant_known_fraud_share_28d"] == 1.0
    assert late["merchant_seconds_since_known_fraud"] == 8 * 86_400
    assert late["merchant_fraud_run_share"] == 1.0
    assert late["merchant_seconds_since_run_start"] == 8 * 86_400
    assert late["user_known_frauds"] == 0  # u4 is not the defrauded customer


@pytest.mark.parametrize("path", ["class", "frame"])
def test_customer_and_pair_features_on_a_hand_computed_history(path: str) -> None:
    frame = _frame(
        [
            ("1", "U", "M1", START, 1),  # known day 7
            ("2", "U", "M2", START + 1 * DAY, 0),  # known day 8
            ("3", "U", "M1", START + 2 * DAY, 0),  # known day 9
            ("4", "U", "M1", START + 10 * DAY, 0),  # the event under test
            ("5", "V", "M1", START + 10 * DAY, 0),  # another customer, same instant
        ]
    )
    rows = label_features_for_frame(frame, DELAY) if path == "frame" else _replay(frame, DELAY)
    first = _named(rows[0])
    assert first["pair_prior_transactions"] == 0
    assert first["user_known_frauds"] == 0
    mine = _named(rows[3])
    assert mine["user_known_frauds"] == 1
    assert mine["user_seconds_since_known_fraud"] == 10 * 86_400
    assert mine["pair_prior_transactions"] == 2  # rows 1 and 3 at M1
    assert mine["pair_known_frauds"] == 1
    assert mine["merchant_known_labels_1d"] == 1  # row 3, known day 9
    assert mine["merchant_known_fraud_share_1d"] == 0.0
    assert mine["merchant_known_labels_7d"] == 2  # rows 1 and 3 (row 2 was at M2)
    assert mine["merchant_known_fraud_share_7d"] == 0.5
    assert mine["merchant_fraud_run_share"] == 0.5  # the fraud, then one legit label
    assert mine["merchant_fraud_run_frauds"] == 1
    other = _named(rows[4])
    assert other["user_known_frauds"] == 0
    assert math.isnan(other["user_seconds_since_known_fraud"])
    assert other["pair_prior_transactions"] == 0
    assert other["pair_known_frauds"] == 0
    assert other["merchant_known_labels_7d"] == 2  # merchant features are the customer's too


def test_the_amount_is_compared_with_known_legit_spending_only() -> None:
    frame = _frame(
        [
            ("1", "U", "M", START, 0),
            ("2", "U", "M", START + 1 * DAY, 0),
            ("3", "U", "M", START + 2 * DAY, 1),  # a fraud's amount is not "spending"
            ("4", "U", "M", START + 3 * DAY, 0),  # legit, but not known at the query
            ("q", "U", "M", START + 9 * DAY + 1, 0),
        ]
    ).assign(amount=["20.00", "40.00", "500.00", "900.00", "100.00"])
    query = _named(label_features_for_frame(frame, DELAY)[4])
    assert query["user_known_legit"] == 2
    assert query["user_amount_over_known_legit_max"] == 2.5  # 100 / max(20, 40)
    state = KnownLabels()
    assert math.isnan(
        _named(state.features("U", "M", START, 10.0))["user_amount_over_known_legit_max"]
    )


def test_window_edges_include_at_minus_width_and_exclude_older() -> None:
    frame = _frame(
        [
            ("old", "a", "M", START - 1, 1),  # known at START + 7d - 1 ms
            ("edge", "b", "M", START, 0),  # known at START + 7d
            ("q", "c", "M", START + 8 * DAY, 0),  # 1d window: [START + 7d, START + 8d)
        ]
    )
    query = _named(label_features_for_frame(frame, DELAY)[2])
    assert query["merchant_known_labels_1d"] == 1
    assert query["merchant_known_fraud_share_1d"] == 0.0
    assert query["merchant_known_labels_7d"] == 2


def test_a_new_run_starts_after_a_quiet_gap() -> None:
    frame = _frame(
        [
            ("f1", "a", "M", START, 1),
            ("l1", "b", "M", START + 1 * DAY, 0),
            ("l2", "c", "M", START + 2 * DAY, 0),
            ("f2", "d", "M", START + 10 * DAY, 1),  # 10 days after f1 > 7-day gap
            ("f3", "e", "M", START + 11 * DAY, 1),
            ("q", "f", "M", START + 19 * DAY, 0),
        ]
    )
    query = _named(label_features_for_frame(frame, DELAY)[5])
    assert query["merchant_fraud_run_frauds"] == 2
    assert query["merchant_fraud_run_share"] == 1.0
    assert query["merchant_seconds_since_run_start"] == 9 * 86_400
    assert query["merchant_seconds_since_known_fraud"] == 8 * 86_400


def test_a_repeated_tx_id_counts_once_and_gets_the_first_rows_values() -> None:
    frame = _frame(
        [
            ("f", "a", "M", START, 1),
            ("f", "a", "M", START, 1),  # redelivered
            ("q", "b", "M", START + 8 * DAY, 0),
        ]
    )
    rows = label_features_for_frame(frame, DELAY)
    assert _named(rows[2])["merchant_known_labels_28d"] == 1
    np.testing.assert_array_equal(rows[1], rows[0])
    state = KnownLabels()
    for _ in range(2):
        state.observe_label("f", "a", "M", START, 1, START + DELAY)
    assert _named(state.features("b", "M", START + 8 * DAY))["merchant_known_labels_28d"] == 1


def test_a_label_observed_late_counts_from_the_next_query() -> None:
    state = KnownLabels()
    assert _named(state.features("u", "M", START + 9 * DAY))["merchant_known_labels_28d"] == 0
    state.observe_label("f", "x", "M", START, 1, START + DELAY)  # arrives after the fact
    later = _named(state.features("u", "M", START + 9 * DAY + 1))
    assert later["merchant_known_labels_28d"] == 1
    assert later["merchant_known_fraud_share_28d"] == 1.0


def test_text_and_missing_labels() -> None:
    frame = _frame(
        [
            ("f", "a", "M", START, "fraud"),
            ("n", "a", "M", START + 1, None),  # never labelled: never known
            ("q", "a", "M", START + 9 * DAY, "legit"),
        ]
    )
    query = _named(label_features_for_frame(frame, DELAY)[2])
    assert query["merchant_known_labels_28d"] == 1
    assert query["user_known_frauds"] == 1
    assert query["pair_prior_transactions"] == 2


def test_bad_input_is_refused() -> None:
    good = _frame([("1", "a", "M", START, 0)])
    with pytest.raises(FeatureInputError, match="label"):
        label_features_for_frame(good.assign(label=["maybe"]), DELAY)
    with pytest.raises(FeatureInputError, match="label"):
        label_features_for_frame(good.assign(label=[2]), DELAY)
    with pytest.raises(FeatureInputError, match="lacks"):
        label_features_for_frame(good.drop(columns=["label"]), DELAY)
    naive = good.assign(event_time=good["event_time"].dt.tz_localize(None))
    with pytest.raises(FeatureInputError, match="tz-aware"):
        label_features_for_frame(naive, DELAY)
    with pytest.raises(FeatureInputError):
        label_features_for_frame(good, -1)
    assert label_features_for_frame(good.iloc[:0], DELAY).shape == (0, len(LABEL_FEATURES))


_ROWS = st.lists(
    st.tuples(
        st.sampled_from(["u1", "u2", "u3"]),
        st.sampled_from(["m1", "m2"]),
        st.sampled_from([0, 1, 60_000, DAY // 2, DAY, 3 * DAY, 8 * DAY]),
        st.sampled_from([0, 1, None]),
        st.sampled_from(["12.50", "80.00", "3.10", "0.00", None]),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(rows=_ROWS, delay=st.sampled_from([0, DAY, DELAY]))
def test_the_frame_path_equals_the_incremental_class(
    rows: list[tuple[str, str, int, int | None, str | None]], delay: int
) -> None:
    clock = START
    history = []
    for index, (user, merchant, gap, label, _) in enumerate(rows):
        clock += gap
        history.append((f"t{index}", user, merchant, clock, label))
    frame = _frame(history).assign(amount=[row[4] for row in rows])
    np.testing.assert_array_equal(label_features_for_frame(frame, delay), _replay(frame, delay))
