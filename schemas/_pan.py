"""Card-number (PAN) detection and redaction.

A plausible PAN is 13-19 digits, optionally grouped by spaces or dashes, that passes the
Luhn check. Redaction works on text and on raw bytes, because the DLQ keeps the original
bytes of a rejected record and those must not carry a card number either.
"""

from __future__ import annotations

import re

__all__ = ["REDACTED", "contains_pan", "luhn_ok", "redact_pans", "redact_pans_bytes"]

REDACTED = "[PAN-REDACTED]"

# A digit run of 13-19 digits with optional single space/dash separators, not glued to
# other digits. Candidates are confirmed with Luhn before they count.
_CANDIDATE = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")
_CANDIDATE_BYTES = re.compile(rb"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")
_SEPARATORS = str.maketrans("", "", " -")


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
