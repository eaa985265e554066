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
