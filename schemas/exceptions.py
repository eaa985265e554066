"""The exception hierarchy's root, shared by every fraudstream package.

Every error the project raises on purpose derives from :class:`FraudstreamError`, so a
caller can tell "fraudstream refused this" from a bug. Errors about a single record are
data, not crashes: they carry what the DLQ needs (a stage, a reason code, a message that
has already been redacted).
"""

from __future__ import annotations

__all__ = ["FraudstreamError", "PanDetectedError", "RecordError", "SchemaValidationError"]


class FraudstreamError(Exception):
    """Root of every error fraudstream raises deliberately."""


class RecordError(FraudstreamError):
    """One input record could not be processed; it goes to the DLQ, the pipeline goes on.

    ``reason`` is a short, stable code used as the DLQ header and the metric label;
    ``message`` is human-readable and never contains a card number.
    """

    reason: str = "invalid"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    @property
    def message(self) -> str:
        """The redacted, human-readable explanation."""
        return str(self.args[0]) if self.args else ""


class SchemaValidationError(RecordError):
    """A message does not satisfy its contract; the message names every bad field."""

    reason = "schema"


class PanDetectedError(SchemaValidationError):
    """A field holds what looks like a raw card number (PAN); the number itself is redacted."""

    reason = "pan_detected"
