from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import (
    Decision,
    Label,
    ModelUpdate,
    PanDetectedError,
    RuleHit,
    SchemaValidationError,
    Transaction,
    decode,
    decode_transaction,
    encode,
)
from schemas.codec import MAX_MESSAGE_BYTES

VISA = "4111111111111111"
ids = st.from_regex(r"\A[A-Za-z][A-Za-z0-9._-]{0,20}\Z")
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
amounts = st.decimals(min_value=0, max_value=999_999, places=2, allow_nan=False)

transactions = st.builds(
    Transaction,
    tx_id=ids,
    user_id=ids,
    merchant_id=ids,
    card_id=st.none() | ids,
    mcc=st.none() | st.from_regex(r"\A[0-9]{4}\Z"),
    amount=amounts,
    currency=st.sampled_from(["EUR", "USD", "GBP"]),
    country=st.none() | st.sampled_from(["FR", "DE", "US"]),
    lat=st.none() | st.floats(-90, 90),
    lon=st.none() | st.floats(-180, 180),
    channel=st.none() | st.sampled_from(["pos", "ecom", "atm"]),
    device_id=st.none() | ids,
    event_time=moments,
)
decisions = st.builds(
    Decision,
    tx_id=ids,
    user_id=ids,
    decision=st.sampled_from(["APPROVE", "REVIEW", "BLOCK"]),
    score=st.none() | st.floats(0, 1),
    member_scores=st.dictionaries(ids, st.floats(0, 1), max_size=3),
    rules_fired=st.lists(
        st.builds(RuleHit, id=ids, reason=ids, action=st.sampled_from(["BLOCK", "TAG"])),
        max_size=3,
    ),
    reasons=st.lists(ids, max_size=3),
    features=st.dictionaries(ids, st.none() | st.floats(-1e6, 1e6), max_size=5),
    degraded=st.booleans(),
    event_time=moments,
    decided_at=moments,
    latency_ms=st.floats(0, 1e4),
)
labels = st.builds(
    Label,
    tx_id=ids,
    user_id=ids,
    label=st.sampled_from(["fraud", "legit"]),
    source=st.sampled_from(["analyst", "chargeback", "customer"]),
    labeled_at=moments,
    analyst_id=st.none() | ids,
)
updates = st.builds(
    ModelUpdate,
    version=ids,
    role=st.sampled_from(["champion", "challenger", "online"]),
    uri=ids,
    sha256=st.from_regex(r"\A[0-9a-f]{64}\Z"),
    metrics=st.dictionaries(ids, st.floats(0, 1), max_size=3),
    published_at=moments,
)


@pytest.mark.parametrize(
    ("strategy", "model"),
    [(transactions, Transaction), (decisions, Decision), (labels, Label), (updates, ModelUpdate)],
)
@given(data=st.data())
def test_every_message_round_trips_through_bytes(data, strategy, model):
    message = data.draw(strategy)
    assert decode(encode(message), model) == message


def _tx(**overrides: object) -> bytes:
    base: dict[str, object] = {
        "tx_id": "t1",
        "user_id": "u1",
        "merchant_id": "m1",
        "amount": "12.30",
        "event_time": "2026-01-01T00:00:00Z",
    }
    base.update(overrides)
    return orjson.dumps({k: v for k, v in base.items() if v is not ...})


def test_minimal_transaction_gets_defaults_and_exact_amount():
    tx = decode_transaction(_tx())
    assert tx.amount == Decimal("12.30")
    assert tx.currency == "EUR"
    assert tx.country is None
    assert orjson.loads(encode(tx))["amount"] == "12.30"


def test_epoch_millis_and_offsets_normalise_to_utc():
    millis = decode_transaction(_tx(event_time=1767225600123)).event_time
    offset = decode_transaction(_tx(event_time="2026-01-01T01:00:00.123+01:00")).event_time
    assert millis == offset == datetime(2026, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"amount": 12.3}, "amount", "floats are not exact"),
        ({"amount": "-1.00"}, "amount", "non-negative"),
        ({"amount": "NaN"}, "amount", "non-negative"),
        ({"amount": "2000000"}, "amount", "maximum"),
        ({"amount": "1.23456"}, "amount", "4 decimal places"),
        ({"event_time": "2026-01-01T00:00:00"}, "event_time", "time zone"),
        ({"event_time": "yesterday"}, "event_time", "RFC 3339"),
        ({"event_time": 1.5e12}, "event_time", "integer"),
        ({"user_id": 42}, "user_id", "string"),
        ({"user_id": ...}, "user_id", "required"),
        ({"surprise": 1}, "surprise", "not a field"),
        ({"lat": 123.0}, "lat", "less than or equal"),
        ({"channel": "fax"}, "channel", "'pos'"),
        ({"schema_version": 7}, "schema_version", "not supported"),
    ],
)
def test_rejections_name_the_field_and_the_reason(overrides, field, reason):
    with pytest.raises(SchemaValidationError) as caught:
        decode_transaction(_tx(**overrides))
    assert f"{field}:" in caught.value.message
    assert reason in caught.value.message
    assert caught.value.reason == "schema"


@pytest.mark.parametrize(
    "overrides",
    [
        {"user_id": VISA},
        {"card_id": "4111-1111-1111-1111"},
        {"device_id": "4111 1111 1111 1111"},
        {"comment": f"pan {VISA}"},
    ],
)
def test_card_numbers_are_refused_and_never_echoed(overrides):
    with pytest.raises(PanDetectedError) as caught:
        decode_transaction(_tx(**overrides))
    assert caught.value.reason == "pan_detected"
    assert "4111" not in caught.value.message


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe{}", "invalid_utf8"),
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (b'{"amount": NaN}', "invalid_json"),
        (b" " * (MAX_MESSAGE_BYTES + 1), "too_large"),
    ],
)
def test_undecodable_bytes_have_their_own_reason(raw, reason):
    with pytest.raises(SchemaValidationError) as caught:
        decode_transaction(raw)
    assert caught.value.reason == reason


def test_label_note_refuses_pan():
    with pytest.raises(ValueError, match="card number"):
        Label(
            tx_id="t",
            user_id="u",
            label="fraud",
            labeled_at=datetime.now(UTC),
            note=f"customer read out {VISA}",
        )


def test_decision_score_range_is_enforced():
    now = datetime.now(UTC)
    with pytest.raises(ValueError, match="score"):
        Decision(
            tx_id="t",
            user_id="u",
            decision="BLOCK",
            score=1.5,
            event_time=now,
            decided_at=now + timedelta(milliseconds=3),
            latency_ms=3,
        )
