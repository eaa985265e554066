"""Bytes to messages and back, with orjson.

Decoding never raises anything but :class:`SchemaValidationError` (or its PAN subclass)
for bad input, and its message names every bad field with the reason, never the value:
that message goes into DLQ headers and logs.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import ValidationError

from schemas._pan import data_holds_pan, raw_may_hold_pan, redact_pans
from schemas._types import PAN_FREE
from schemas.exceptions import PanDetectedError, SchemaValidationError
from schemas.messages import Message, Transaction

__all__ = ["MAX_MESSAGE_BYTES", "decode", "decode_transaction", "encode", "validation_message"]

MAX_MESSAGE_BYTES = 64 * 1024
M = TypeVar("M", bound=Message)

_FRIENDLY = {
    "missing": "is required",
    "extra_forbidden": "is not a field of this message",
}


def encode(message: Message) -> bytes:
    """The wire form of a message: compact UTF-8 JSON."""
    return orjson.dumps(message.model_dump(mode="json"))


def validation_message(error: ValidationError) -> tuple[str, str]:
    """A (reason, message) pair naming each bad field and why, never echoing a value."""
    parts: list[str] = []
    reason = "schema"
    for item in error.errors(include_input=False, include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or "(message)"
        kind = item["type"]
        if kind == "pan_detected":
            reason = "pan_detected"
        parts.append(f"{field}: {_FRIENDLY.get(kind, item['msg'])}")
    return reason, redact_pans("; ".join(parts))


def _loads(raw: bytes) -> Any:
    if len(raw) > MAX_MESSAGE_BYTES:
        raise SchemaValidationError(
            f"message is {len(raw)} bytes, above the limit of {MAX_MESSAGE_BYTES}",
            reason="too_large",
        )
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise SchemaValidationError(
                "message is not valid UTF-8", reason="invalid_utf8"
            ) from None
        # orjson's message quotes no input, only a position, so it is safe to keep.
        raise SchemaValidationError(
            f"message is not valid JSON: {exc}", reason="invalid_json"
        ) from None


def decode(raw: bytes, model: type[M]) -> M:
    """Parse and validate one message of type ``model``."""
    data = _loads(raw)
    if not isinstance(data, dict):
        raise SchemaValidationError("message must be a JSON object", reason="not_an_object")
    # One scan of the raw bytes instead of one per string field, when it finds nothing.
    context = None if raw_may_hold_pan(raw) else {PAN_FREE: True}
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        reason, message = validation_message(exc)
        if reason != "pan_detected" and data_holds_pan(data):
            # e.g. a card number smuggled in an unknown field: name it for what it is.
            reason, message = "pan_detected", f"{message}; the message holds a card number"
        error_type = PanDetectedError if reason == "pan_detected" else SchemaValidationError
        raise error_type(message, reason=reason) from None


def decode_transaction(raw: bytes) -> Transaction:
    """The hot-path decoder of the ``transactions`` topic."""
    return decode(raw, Transaction)
