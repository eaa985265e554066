"""Merchant label records: the book's records decode to what KnownLabels computes."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.enrichment import Enrichment
from operators.exceptions import BatchError, FeatureInputError, RecoveryStateError
from operators.label_features import LABEL_FEATURES, KnownLabels
from operators.merchant_labels import (
    MERCHANT_LABEL_FEATURES,
    MERCHANT_RISK_FEATURE,
    RECORD_VERSION,
    MerchantLabelBook,
    merchant_label_matrix,
    merchant_label_values,
    merchant_risk_from,
)

HOUR = 3_600_000
DAY = 24 * HOUR
START = 1_532_476_800_000  # 2018-07-25T00:00:00Z
WIDTH = len(MERCHANT_LABEL_FEATURES)
MERCHANTS = ("m1", "m2", "m3")


def _named(values: list[float]) -> dict[str, float]:
    return dict(zip(MERCHANT_LABEL_FEATURES, values, strict=True))


def _same(actual: object, expected: object) -> None:
    np.testing.assert_allclose(
        np.asarray(actual, dtype=np.float64),
        np.asarray(expected, dtype=np.float64),
        rtol=0,
        atol=1e-9,
        equal_nan=True,
    )


def _nothing() -> list[float]:
    return merchant_label_values(None, START)


# (merchant index, event offset, delay to known, fraud): times on a coarse grid (ties
# between known times happen) or to the millisecond.
_MOMENT = st.one_of(st.integers(0, 80).map(lambda step: step * 18 * HOUR), st.integers(0, 60 * DAY))
_LABEL = st.tuples(
    st.integers(0, len(MERCHANTS) - 1),
    _MOMENT,
    st.one_of(st.just(0), st.integers(0, 10).map(lambda d: d * DAY), st.integers(1, 10 * DAY)),
    st.booleans(),
)


def test_the_merchant_features_are_the_label_features_of_merchants_in_order() -> None:
    assert len(MERCHANT_LABEL_FEATURES) == 12
    assert LABEL_FEATURES[:12] == MERCHANT_LABEL_FEATURES
    assert all(name.startswith("merchant_") for name in MERCHANT_LABEL_FEATURES)
    assert MERCHANT_RISK_FEATURE in MERCHANT_LABEL_FEATURES


def test_no_record_reads_as_a_merchant_without_labels() -> None:
    expected = KnownLabels().features("u", "m", START)[:WIDTH]
    _same(merchant_label_values(None, START), expected)
    values = _named(_nothing())
    assert values["merchant_known_labels_28d"] == 0
    assert values["merchant_fraud_run_frauds"] == 0
    assert math.isnan(values["merchant_known_fraud_share_1d"])
    assert math.isnan(values["merchant_seconds_since_known_fraud"])
    assert math.isnan(merchant_risk_from(_nothing()))


_VALID = {"v": 1, "t": 0, "n": [1, 2, 2, 3], "f": [1, 1, 1, 2], "lf": 5, "rs": 5, "rf": 2, "rl": 3}


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"\xff\xfe garbage",
        b"not json",
        b"[0.5]",
        b"true",
        b"null",
        b'"0.5"',
        b"1.5",
        b"-0.1",
        b"NaN",
        orjson.dumps({**_VALID, "v": 2}),
        orjson.dumps({**_VALID, "v": True}),
        orjson.dumps({k: v for k, v in _VALID.items() if k != "lf"}),
        orjson.dumps({**_VALID, "n": [1, 2, 2]}),
        orjson.dumps({**_VALID, "n": "1223"}),
        orjson.dumps({**_VALID, "f": [2, 1, 1, 2]}),  # more frauds than labels
        orjson.dumps({**_VALID, "n": [1, 2, 2, -3]}),
        orjson.dumps({**_VALID, "n": [1.0, 2, 2, 3]}),
        orjson.dumps({**_VALID, "rf": 4}),
        orjson.dumps({**_VALID, "rl": True}),
        orjson.dumps({**_VALID, "lf": "5"}),
        orjson.dumps({**_VALID, "rs": 2**60}),
    ],
)
def test_garbage_reads_as_no_record_and_never_raises(raw: bytes) -> None:
    _same(merchant_label_values(raw, START), _nothing())
    _same(merchant_label_matrix([raw], [START]), [_nothing()])


def test_a_valid_record_decodes_at_the_event_time() -> None:
    values = _named(merchant_label_values(orjson.dumps(_VALID), 5 + 3_000))
    assert values["merchant_known_labels_28d"] == 3
    assert values["merchant_known_fraud_share_28d"] == pytest.approx(2 / 3)
    assert values["merchant_known_fraud_share_1d"] == 1.0
    assert values["merchant_seconds_since_known_fraud"] == 3.0
    assert values["merchant_seconds_since_run_start"] == 3.0
    assert values["merchant_fraud_run_share"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(("raw", "risk"), [(b"0.9", 0.9), (b"0.900000", 0.9), (b"0", 0.0)])
def test_a_bare_number_is_a_risk_alone(raw: bytes, risk: float) -> None:
    values = merchant_label_values(raw, START)
    assert merchant_risk_from(values) == risk
    others = [i for i, name in enumerate(MERCHANT_LABEL_FEATURES) if name != MERCHANT_RISK_FEATURE]
    _same([values[i] for i in others], [_nothing()[i] for i in others])


def test_a_hand_computed_merchant() -> None:
    book = MerchantLabelBook()
    assert book.apply("f1", "M", START, True, START + 7 * DAY)
    assert book.apply("l1", "M", START + DAY, False, START + 8 * DAY)
    assert book.apply("l2", "M", START + 2 * DAY, False, START + 9 * DAY + HOUR)
    assert book.apply("late", "M", START + 3 * DAY, True, START + 30 * DAY)  # known later
    now = START + 10 * DAY
    record = book.records(now)["M"]
    assert orjson.loads(record)["v"] == RECORD_VERSION
    values = _named(merchant_label_values(record, now + 60_000))
    assert values["merchant_known_labels_1d"] == 1  # l2, known in the last day
    assert values["merchant_known_fraud_share_1d"] == 0.0
    assert values["merchant_known_labels_7d"] == 3
    assert values["merchant_known_fraud_share_7d"] == pytest.approx(1 / 3)
    assert values["merchant_seconds_since_known_fraud"] == 10 * 86_400 + 60
    assert values["merchant_fraud_run_frauds"] == 1
    assert values["merchant_fraud_run_share"] == pytest.approx(1 / 3)
    assert values["merchant_seconds_since_run_start"] == 10 * 86_400 + 60


def test_windows_are_as_of_the_record_and_seconds_as_of_the_event() -> None:
    book = MerchantLabelBook()
    book.apply("f", "M", START, True, START + DAY)
    record = book.records(START + DAY + HOUR)["M"]
    later = _named(merchant_label_values(record, START + 5 * DAY))
    assert later["merchant_known_labels_1d"] == 1  # stale: a refreshed record says 0
    assert later["merchant_seconds_since_known_fraud"] == 5 * 86_400  # exact
    fresh = _named(merchant_label_values(book.records(START + 5 * DAY)["M"], START + 5 * DAY))
    assert fresh["merchant_known_labels_1d"] == 0
    assert fresh["merchant_known_labels_7d"] == 1


def test_a_label_not_yet_known_is_left_out() -> None:
    book = MerchantLabelBook()
    book.apply("f", "M", START, True, START + DAY)
    _same(merchant_label_values(book.records(START + DAY)["M"], START + DAY), _nothing())


def test_a_repeat_is_a_noop_and_a_correction_replaces_the_verdict() -> None:
    book = MerchantLabelBook()
    assert book.apply("t", "M", START, True, START + DAY)
    assert not book.apply("t", "M", START, True, START + 2 * DAY)
    assert book.apply("t", "M", START, False, START + 2 * DAY)
    assert book.labels_held == 1
    values = _named(merchant_label_values(book.records(START + 3 * DAY)["M"], START + 3 * DAY))
    assert values["merchant_known_labels_28d"] == 1
    assert values["merchant_known_fraud_share_28d"] == 0.0
    assert math.isnan(values["merchant_seconds_since_known_fraud"])
    assert values["merchant_fraud_run_frauds"] == 0


def test_a_merchant_not_held_gets_a_record_that_clears_redis() -> None:
    records = MerchantLabelBook().records(START, ["nobody"])
    assert set(records) == {"nobody"}
    _same(merchant_label_values(records["nobody"], START), _nothing())


@settings(max_examples=150, deadline=None)
@given(
    labels=st.lists(_LABEL, max_size=40),
    queries=st.lists(st.integers(0, 80 * DAY), min_size=1, max_size=5),
    evict=st.booleans(),
)
def test_records_equal_known_labels_without_corrections(
    labels: list[tuple[int, int, int, bool]], queries: list[int], evict: bool
) -> None:
    book = MerchantLabelBook()
    known = KnownLabels()
    for number, (merchant, event, delay, fraud) in enumerate(labels):
        name, event_ms = MERCHANTS[merchant], START + event
        assert book.apply(f"t{number}", name, event_ms, fraud, event_ms + delay)
        known.observe_label(f"t{number}", "u", name, event_ms, fraud, event_ms + delay)
    for offset in sorted(queries):
        at = START + offset
        if evict:
            book.evict(at)
        records = book.records(at, MERCHANTS)
        for name in MERCHANTS:
            expected = known.features("u", name, at)[:WIDTH]
            _same(merchant_label_values(records[name], at), expected)


@settings(max_examples=150, deadline=None)
@given(
    labels=st.lists(st.tuples(st.integers(0, 9), _LABEL), max_size=40),
    query=st.integers(0, 80 * DAY),
)
def test_corrections_equal_known_labels_fed_the_latest_verdicts(
    labels: list[tuple[int, tuple[int, int, int, bool]]], query: int
) -> None:
    book = MerchantLabelBook()
    latest: dict[str, tuple[int, str, int, bool, int]] = {}  # tx -> (order, merchant, ...)
    for order, (tx, (merchant, event, delay, fraud)) in enumerate(labels):
        tx_id, event_ms = f"t{tx}", START + event
        name = latest[tx_id][1] if tx_id in latest else MERCHANTS[merchant]
        changed = tx_id not in latest or latest[tx_id][3] != fraud
        assert book.apply(tx_id, name, event_ms, fraud, event_ms + delay) == changed
        if changed:
            latest[tx_id] = (order, name, event_ms, fraud, event_ms + delay)
    known = KnownLabels()
    for tx_id, (_, name, event_ms, fraud, known_at) in sorted(
        latest.items(), key=lambda item: item[1][0]
    ):
        known.observe_label(tx_id, "u", name, event_ms, fraud, known_at)
    at = START + query
    records = book.records(at, MERCHANTS)
    for name in MERCHANTS:
        _same(merchant_label_values(records[name], at), known.features("u", name, at)[:WIDTH])


def test_a_run_longer_than_the_retained_span_survives_eviction() -> None:
    book, known = MerchantLabelBook(), KnownLabels()
    for day in range(0, 90, 5):  # a fraud every 5 days: one run of 18 frauds
        for tx, fraud in ((f"f{day}", True), (f"l{day}", False)):
            book.apply(tx, "M", START + day * DAY, fraud, START + (day + 1) * DAY)
            known.observe_label(tx, "u", "M", START + day * DAY, fraud, START + (day + 1) * DAY)
    at = START + 100 * DAY
    assert book.evict(at) > 0
    assert book.labels_held < 36
    values = merchant_label_values(book.records(at)["M"], at)
    _same(values, known.features("u", "M", at)[:WIDTH])
    assert _named(values)["merchant_fraud_run_frauds"] == 18


def test_eviction_drops_merchants_left_with_nothing_and_keeps_known_frauds() -> None:
    book = MerchantLabelBook()
    book.apply("legit", "clean", START, False, START + DAY)
    book.apply("fraud", "hit", START, True, START + DAY)
    assert book.evict(START + 29 * DAY) == 0  # still within 28 days + 1 day of slack
    assert book.evict(START + 31 * DAY) == 2
    assert set(book.records(START + 31 * DAY)) == {"hit"}
    values = _named(merchant_label_values(book.records(START + 31 * DAY)["hit"], START + 31 * DAY))
    assert values["merchant_known_labels_28d"] == 0
    assert values["merchant_seconds_since_known_fraud"] == 31 * 86_400


def test_state_round_trips_through_json() -> None:
    book = MerchantLabelBook()
    book.apply("a", "M", START, True, START + DAY)
    book.apply("b", "M", START + HOUR, False, START + 2 * DAY)
    book.apply("c", "N", START, False, START + DAY)
    book.evict(START + 40 * DAY)
    book.apply("d", "M", START + 39 * DAY, False, START + 40 * DAY)
    copy = MerchantLabelBook.from_state(orjson.loads(orjson.dumps(book.state())))
    assert copy.labels_held == book.labels_held
    assert copy.records(START + 41 * DAY) == book.records(START + 41 * DAY)
    assert not copy.apply("d", "M", START + 39 * DAY, False, START + 40 * DAY)
    assert copy.apply("e", "M", START + 40 * DAY, True, START + 41 * DAY)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s.update(version=99),
        lambda s: s.pop("merchants"),
        lambda s: s.update(seq="3"),
        lambda s: s.update(keep_ms=1),
        lambda s: s["merchants"]["M"].update(base=[1, 2]),
        lambda s: s["merchants"]["M"]["labels"].append(["a", 1, 2, 3, 1]),  # repeated tx
        lambda s: s["merchants"]["M"]["labels"].append(["z", 1, 99, 3, 1]),  # seq ahead
        lambda s: s["merchants"]["M"]["labels"].append(["y", 1, 1, 3, 2]),  # bad flag
    ],
)
def test_a_malformed_state_is_refused(mutate: object) -> None:
    book = MerchantLabelBook()
    book.apply("a", "M", START, True, START + DAY)
    state = orjson.loads(orjson.dumps(book.state()))
    mutate(state)  # type: ignore[operator]
    with pytest.raises(RecoveryStateError):
        MerchantLabelBook.from_state(state)


def test_a_book_refuses_windows_it_cannot_keep() -> None:
    with pytest.raises(FeatureInputError):
        MerchantLabelBook(keep_ms=DAY)
    with pytest.raises(FeatureInputError):
        MerchantLabelBook(run_gap_ms=-1)


def test_the_batch_matrix_equals_the_row_function() -> None:
    book = MerchantLabelBook()
    book.apply("a", "M", START, True, START + DAY)
    book.apply("b", "M", START + HOUR, False, START + DAY)
    record = book.records(START + 2 * DAY)["M"]
    raws = [record, None, b"0.25", record, b"garbage", None]
    ats = [START + 2 * DAY + i * 1_234 for i in range(len(raws))]
    expected = [merchant_label_values(raw, at) for raw, at in zip(raws, ats, strict=True)]
    matrix = merchant_label_matrix(raws, ats)
    assert matrix.shape == (len(raws), WIDTH)
    _same(matrix, expected)
    assert merchant_label_matrix([], []).shape == (0, WIDTH)
    with pytest.raises(BatchError):
        merchant_label_matrix([record], [])


def test_enrichment_fills_merchant_labels_when_left_out() -> None:
    plain = Enrichment(np.array([0.5, np.nan]), np.zeros(2, dtype=bool), np.zeros(2, dtype=bool))
    _same(plain.merchant_labels, [_nothing(), _nothing()])
    empty = Enrichment.empty(3, "redis_timeout")
    assert empty.merchant_labels.shape == (3, WIDTH)
    _same(empty.merchant_labels[0], _nothing())
    with pytest.raises(BatchError):
        Enrichment(
            np.zeros(2),
            np.zeros(2, dtype=bool),
            np.zeros(2, dtype=bool),
            None,
            np.zeros((1, WIDTH)),
        )
