import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import REDACTED, contains_pan, redact_pans, redact_pans_bytes
from schemas._pan import luhn_ok

VISA = "4111111111111111"  # public test number, Luhn-valid


def _luhn_complete(prefix: str) -> str:
    """Append the check digit that makes ``prefix`` Luhn-valid."""
    for digit in "0123456789":
        if luhn_ok(prefix + digit):
            return prefix + digit
    raise AssertionError("unreachable")


def test_known_test_numbers_pass_luhn():
    assert luhn_ok(VISA)
    assert luhn_ok("378282246310005")  # Amex, 15 digits
    assert not luhn_ok("4111111111111112")


def test_detects_pans_with_separators():
    assert contains_pan("card 4111 1111 1111 1111 used")
    assert contains_pan("4111-1111-1111-1111")
    assert not contains_pan("4111111111111112")  # fails Luhn
    assert not contains_pan("411111111111")  # 12 digits: too short


def test_digit_runs_glued_to_longer_numbers_are_not_pans():
    assert not contains_pan("4111111111111111" + "1111")  # 20 digits


@given(body=st.text(alphabet="0123456789", min_size=12, max_size=18))
def test_every_luhn_valid_run_of_13_to_19_digits_is_found_and_redacted(body: str):
    pan = _luhn_complete(body)
    text = f"id={pan};"
    assert contains_pan(text)
    redacted = redact_pans(text)
    assert pan not in redacted
    assert REDACTED in redacted
    assert pan.encode() not in redact_pans_bytes(text.encode())


@given(st.text(max_size=40))
def test_redaction_leaves_text_without_pans_unchanged(text: str):
    if not contains_pan(text):
        assert redact_pans(text) == text


def test_bytes_redaction_works_on_invalid_utf8():
    raw = b"\xff\xfe" + VISA.encode() + b"\xff"
    assert VISA.encode() not in redact_pans_bytes(raw)
    assert redact_pans_bytes(raw).startswith(b"\xff\xfe")


# -- the whole-message prefilter of the decoder --------------------------------------------

_VISA = "4111111111111111"


@given(
    st.dictionaries(
        st.one_of(st.text(max_size=8), st.sampled_from(["event_time", "labeled_at", "x"])),
        st.one_of(
            st.text(alphabet="0123456789 -abc", max_size=40),
            st.integers(min_value=0, max_value=10**19),
            st.just(_VISA),
            st.just(f"ref {_VISA[:4]} {_VISA[4:8]} {_VISA[8:12]} {_VISA[12:]}"),
        ),
        max_size=6,
    )
)
def test_prefilter_never_misses_what_the_per_field_scan_finds(data: dict[str, object]) -> None:
    from schemas._pan import data_holds_pan, raw_may_hold_pan

    if data_holds_pan(data):
        assert raw_may_hold_pan(orjson.dumps(data))


def test_prefilter_passes_ordinary_transactions_and_flags_escapes() -> None:
    from schemas._pan import raw_may_hold_pan

    ordinary = b'{"tx_id":"bench-1f2e-n12","amount":"12.30","event_time":1764000000001}'
    assert not raw_may_hold_pan(ordinary)
    assert raw_may_hold_pan(b'{"tx_id":"' + _VISA.encode() + b'"}')
    # Digits spelled as JSON escapes are invisible to the regex: always checked per field.
    assert raw_may_hold_pan(b'{"note":"\\u0034111111111111111"}')


def test_a_pan_spelled_with_json_escapes_is_still_refused() -> None:
    from schemas import PanDetectedError, decode_transaction

    escaped = "".join(f"\\u{ord(c):04x}" for c in _VISA)
    raw = (
        '{"tx_id":"t1","user_id":"u1","merchant_id":"m1","amount":"1.00",'
        f'"event_time":1764000000000,"device_id":"{escaped}"}}'
    ).encode()
    with pytest.raises(PanDetectedError):
        decode_transaction(raw)
