"""Constrained field types shared by every message.

Every free-text field is a ``SafeStr``: it refuses a value that holds a card number, with
an error that names the field but never echoes the number.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, StringConstraints, ValidationInfo
from pydantic_core import PydanticCustomError

from schemas._pan import contains_pan

__all__ = [
    "MAX_AMOUNT",
    "Amount",
    "Identifier",
    "SafeStr",
    "Timestamp",
    "epoch_ms",
    "format_timestamp",
    "parse_timestamp",
]

MAX_AMOUNT = Decimal("1000000")
_MAX_DECIMAL_PLACES = 4
_DECIMAL = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,12})?$")


#: Validation context key set by the decoder when the raw message was already scanned
#: whole (``raw_may_hold_pan``) and holds no card number: the per-field scan is skipped.
PAN_FREE = "fraudstream_pan_free"


def _refuse_pan(value: Any, info: ValidationInfo) -> Any:
    # Runs before any other constraint, so a PAN is reported as a PAN, not as a bad pattern.
    context = info.context
    if context is not None and context.get(PAN_FREE):
        return value
    if isinstance(value, str) and contains_pan(value):
        raise PydanticCustomError(
            "pan_detected", "holds what looks like a card number (PAN); send a card token"
        )
    return value


SafeStr = Annotated[str, BeforeValidator(_refuse_pan)]
Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$"),
    BeforeValidator(_refuse_pan),
]


def _parse_amount(value: Any) -> Decimal:
    # Floats are refused: a binary float cannot carry an exact amount of money.
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise PydanticCustomError(
            "amount_type", 'must be a decimal string such as "12.30" (floats are not exact)'
        )
    text = format(value, "f") if isinstance(value, Decimal) else str(value)
    if not _DECIMAL.match(text):
        raise PydanticCustomError(
            "amount_format", "must be a non-negative decimal string such as 12.30"
        )
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise PydanticCustomError("amount_format", "is not a decimal number") from exc
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > _MAX_DECIMAL_PLACES:
        raise PydanticCustomError("amount_precision", "has more than 4 decimal places")
    if amount > MAX_AMOUNT:
        raise PydanticCustomError("amount_range", "is above the maximum of 1,000,000")
    return amount


Amount = Annotated[
    Decimal,
    BeforeValidator(_parse_amount),
    PlainSerializer(lambda amount: format(amount, "f"), return_type=str, when_used="json"),
]


def parse_timestamp(value: Any) -> datetime:
    """Accept RFC 3339 with a zone, or epoch milliseconds; return an aware UTC datetime."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value / 1000, tz=UTC)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as exc:
            raise PydanticCustomError(
                "timestamp_format", "must be RFC 3339 (e.g. 2026-01-01T12:00:00Z) or epoch ms"
            ) from exc
    elif isinstance(value, float) and math.isfinite(value):
        raise PydanticCustomError("timestamp_type", "must be epoch milliseconds as an integer")
    else:
        raise PydanticCustomError("timestamp_type", "must be an RFC 3339 string or epoch ms")
    if moment.tzinfo is None:
        raise PydanticCustomError("timestamp_zone", "needs a time zone (e.g. Z or +02:00)")
    return moment.astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def epoch_ms(moment: datetime) -> int:
    """Exact epoch milliseconds of an aware datetime (integer arithmetic, no float rounding)."""
    return (moment - _EPOCH) // _ONE_MS


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision, the wire format of every timestamp."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


Timestamp = Annotated[
    datetime,
    BeforeValidator(parse_timestamp),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]
