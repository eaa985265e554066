import json

import orjson
import pytest

from schemas import REDACTED, DlqRecord, SchemaValidationError, contains_pan, decode_transaction
from schemas.codec import MAX_MESSAGE_BYTES
from schemas.export import JSON_DIR, MESSAGES, render

VISA = "4111111111111111"


def test_dlq_record_keeps_original_bytes_but_no_card_number():
    raw = b'{"tx_id": "t1", "user_id": "' + VISA.encode() + b'"}'
    with pytest.raises(SchemaValidationError) as caught:
        decode_transaction(raw)
    record = DlqRecord.from_error(
        caught.value,
        key=b"u1",
        value=raw,
        stage="decode",
        topic="transactions",
        partition=3,
        offset=42,
    )
    assert VISA.encode() not in record.value
    assert orjson.loads(record.value) == {"tx_id": "t1", "user_id": REDACTED}
    headers = dict(record.kafka_headers())
    assert headers["error_reason"] == b"pan_detected"
    assert headers["stage"] == b"decode"
    assert headers["source_partition"] == b"3"
    assert all(VISA.encode() not in value for value in headers.values())
    again = DlqRecord.from_kafka(record.key, record.value, record.kafka_headers())
    assert again == record


def test_dlq_record_of_an_unexpected_error_is_marked_internal():
    record = DlqRecord.from_error(
        RuntimeError("boom"),
        key=None,
        value=b"x",
        stage="score",
        topic="t",
        partition=0,
        offset=0,
    )
    assert record.error_reason == "internal_error"
    assert record.error_class == "RuntimeError"


def test_a_huge_record_is_dead_lettered_cut_to_the_decoder_limit_without_a_card_number():
    # A 1 MiB value (not JSON) with a card number at the cut: the dead letter must still
    # fit the DLQ topic (the pipeline would stop on it) and keep no digit of the number.
    limit = MAX_MESSAGE_BYTES
    raw = b"not json " + b"x" * (limit - 20) + VISA.encode() + b"y" * (1 << 20)
    with pytest.raises(SchemaValidationError) as caught:
        decode_transaction(raw)
    record = DlqRecord.from_error(
        caught.value, key=b"k" * (2 * limit), value=raw, stage="decode",
        topic="transactions", partition=0, offset=7,
    )  # fmt: skip
    assert record.error_reason == "too_large"
    assert len(record.value) <= limit
    assert record.key is not None
    assert len(record.key) == limit
    assert record.value.startswith(b"not json xxx")
    assert VISA[:4].encode() not in record.value
    assert not contains_pan(record.value.decode("utf-8", errors="replace"))


@pytest.mark.parametrize("model", MESSAGES, ids=lambda m: m.__name__)
def test_exported_json_schema_files_match_the_code(model):
    path = JSON_DIR / f"{model.__name__.lower()}.schema.json"
    assert path.exists(), "run `python -m schemas.export`"
    assert path.read_text() == render(model), "stale schema: run `python -m schemas.export`"
    assert set(json.loads(path.read_text())["properties"]) == set(model.model_fields)


def _luhn_valid_epoch_ms() -> int:
    from schemas import contains_pan

    return next(ms for ms in range(1_767_225_600_000, 1_767_225_600_100) if contains_pan(str(ms)))


def test_an_epoch_ms_timestamp_is_not_a_card_number():
    epoch = _luhn_valid_epoch_ms()
    raw = (
        b'{"tx_id": "t1", "user_id": "u1", "merchant_id": "m1", "amount": 1.5, "event_time": '
        + str(epoch).encode()
        + b"}"
    )
    with pytest.raises(SchemaValidationError) as caught:
        decode_transaction(raw)
    assert caught.value.reason == "schema"
    record = DlqRecord.from_error(
        caught.value, key=b"u1", value=raw, stage="decode", topic="t", partition=0, offset=0
    )
    assert record.value == raw  # untouched: nothing to redact


def test_a_card_number_sent_as_a_json_number_is_redacted_field_by_field():
    epoch = _luhn_valid_epoch_ms()
    raw = (
        b'{"tx_id": "t1", "pan": '
        + VISA.encode()
        + b', "event_time": '
        + str(epoch).encode()
        + b"}"
    )
    with pytest.raises(SchemaValidationError) as caught:
        decode_transaction(raw)
    assert caught.value.reason == "pan_detected"
    record = DlqRecord.from_error(
        caught.value, key=None, value=raw, stage="decode", topic="t", partition=0, offset=0
    )
    assert VISA.encode() not in record.value
    assert str(epoch).encode() in record.value
