"""Card-number (PAN) detection and redaction.

A plausible PAN is 13-19 digits, optionally grouped by spaces or dashes, that passes the
Luhn check. Redaction works on text and on raw bytes, because the DLQ keeps the original
bytes of a rejected record and those must not carry a card number either.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

__all__ = [
    "REDACTED",
    "TIMESTAMP_FIELDS",
    "contains_pan",
    "data_holds_pan",
    "luhn_ok",
    "raw_may_hold_pan",
    "redact_pans",
    "redact_pans_bytes",
    "redact_record_bytes",
]

#: Integer values of these fields are epoch milliseconds, which are 13 digits long and
#: pass the Luhn check one time in ten: they are never taken for card numbers.
TIMESTAMP_FIELDS = frozenset({"event_time", "labeled_at", "decided_at", "published_at"})

#: How a timestamp key precedes its value in compact JSON.
_TIMESTAMP_KEYS = tuple(f'"{name}":'.encode() for name in sorted(TIMESTAMP_FIELDS))

REDACTED = "[PAN-REDACTED]"

# A digit run of 13-19 digits with optional single space/dash separators, not glued to
# other digits. Candidates are confirmed with Luhn before they count.
_CANDIDATE = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")
_CANDIDATE_BYTES = re.compile(rb"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")
_SEPARATORS = str.maketrans("", "", " -")
#: Maximal runs that could hold a candidate: a cheap pre-scan (no nested repetition) for
#: ``raw_may_hold_pan``, which then runs the exact pattern inside each run only.
_DIGIT_RUN = re.compile(rb"[0-9][0-9 -]{11,}[0-9]")


def luhn_ok(digits: str) -> bool:
    """Luhn checksum of a string of digits (no separators)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _is_pan(candidate: str) -> bool:
    digits = candidate.translate(_SEPARATORS)
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def contains_pan(text: str) -> bool:
    """True when ``text`` holds a plausible card number anywhere."""
    if len(text) < 13:
        return False
    return any(_is_pan(match.group()) for match in _CANDIDATE.finditer(text))


def raw_may_hold_pan(raw: bytes) -> bool:
    """False only when no string or number in the JSON ``raw`` can be a card number.

    One C-level regex pass over the whole message, so that the per-field checks can be
    skipped for the (usual) message without any 13-19 digit run passing Luhn. A JSON
    escape (a backslash followed by ``u``) could spell digits the regex does not see:
    such a message always gets the per-field checks.
    """
    if b"\\u" in raw:
        return True
    for run in _DIGIT_RUN.finditer(raw):
        if raw.endswith(_TIMESTAMP_KEYS, 0, run.start()):
            # Epoch milliseconds under a timestamp key, as data_holds_pan reads them. The
            # message parsed as JSON, so the run is that number and spaces.
            continue
        if any(_is_pan(m.group().decode("ascii")) for m in _CANDIDATE_BYTES.finditer(run[0])):
            return True
    return False


def redact_pans(text: str) -> str:
    """Replace every plausible card number in ``text`` with :data:`REDACTED`."""
    if len(text) < 13:
        return text
    return _CANDIDATE.sub(lambda m: REDACTED if _is_pan(m.group()) else m.group(), text)


def redact_pans_bytes(raw: bytes) -> bytes:
    """Byte-level :func:`redact_pans`, for payloads that may not even be valid UTF-8."""
    if len(raw) < 13:
        return raw
    redacted = REDACTED.encode()

    def _sub(match: re.Match[bytes]) -> bytes:
        return redacted if _is_pan(match.group().decode("ascii")) else match.group()

    return _CANDIDATE_BYTES.sub(_sub, raw)


def _int_is_pan(value: int) -> bool:
    return not isinstance(value, bool) and value >= 0 and _is_pan(str(value))


def data_holds_pan(data: Any, key: str | None = None) -> bool:
    """True when parsed JSON holds a card number in a string, or as a bare number.

    Integers under a timestamp key are epoch milliseconds, not card numbers.
    """
    if isinstance(data, str):
        return contains_pan(data)
    if isinstance(data, int):
        return key not in TIMESTAMP_FIELDS and _int_is_pan(data)
    if isinstance(data, dict):
        return any(contains_pan(k) or data_holds_pan(v, k) for k, v in data.items())
    if isinstance(data, list):
        return any(data_holds_pan(item, key) for item in data)
    return False


def _redact_data(data: Any, key: str | None = None) -> Any:
    if isinstance(data, str):
        return redact_pans(data)
    if isinstance(data, int) and key not in TIMESTAMP_FIELDS and _int_is_pan(data):
        return REDACTED
    if isinstance(data, dict):
        return {redact_pans(k): _redact_data(v, k) for k, v in data.items()}
    if isinstance(data, list):
        return [_redact_data(item, key) for item in data]
    return data


def redact_record_bytes(raw: bytes) -> bytes:
    """A record's bytes without card numbers, unchanged when it holds none.

    JSON is redacted field by field (so an epoch-ms timestamp survives); anything that
    does not parse is redacted byte by byte.
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return redact_pans_bytes(raw)
    if not data_holds_pan(data):
        return raw
    return orjson.dumps(_redact_data(data))
