"""The dead-letter envelope: the original record plus headers that say what went wrong.

The value is the original bytes, except that a record holding a card number is stored with
the number redacted (field by field when it is JSON): no PAN is ever stored in the DLQ.
A key or value beyond the decoder's limit (a record refused as ``too_large``) is kept up
to that limit only: a 1 MB record must not make its dead letter too large for the DLQ
topic, which would stop the pipeline on one bad record.
Headers are plain strings so that any Kafka client can read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from schemas._pan import redact_pans, redact_pans_bytes, redact_record_bytes
from schemas._types import format_timestamp
from schemas.codec import MAX_MESSAGE_BYTES
from schemas.exceptions import RecordError

__all__ = ["DLQ_HEADERS", "DlqRecord"]

#: The most of a record's key or value a dead letter keeps: what the decoder accepts.
MAX_KEPT_BYTES = MAX_MESSAGE_BYTES

DLQ_HEADERS = (
    "error_class",
    "error_reason",
    "error_message",
    "stage",
    "source_topic",
    "source_partition",
    "source_offset",
    "failed_at",
)


class DlqRecord(BaseModel):
    """One record on ``transactions-dlq``."""

    model_config = ConfigDict(frozen=True)

    key: bytes | None
    value: bytes
    error_class: str
    error_reason: str
    error_message: str
    stage: str
    source_topic: str
    source_partition: int
    source_offset: int
    failed_at: str

    @classmethod
    def from_error(
        cls,
        error: Exception,
        *,
        key: bytes | None,
        value: bytes,
        stage: str,
        topic: str,
        partition: int,
        offset: int,
    ) -> DlqRecord:
        """Wrap a failed record; redacts card numbers from the bytes and the message."""
        reason = error.reason if isinstance(error, RecordError) else "internal_error"
        return cls(
            key=None if key is None else _kept(redact_pans_bytes(key)),
            value=_kept(redact_record_bytes(value)),
            error_class=type(error).__name__,
            error_reason=reason,
            error_message=redact_pans(str(error))[:1000],
            stage=stage,
            source_topic=topic,
            source_partition=partition,
            source_offset=offset,
            failed_at=format_timestamp(datetime.now(tz=UTC)),
        )

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        """The headers as Kafka wants them."""
        return [(name, str(getattr(self, name)).encode()) for name in DLQ_HEADERS]

    @classmethod
    def from_kafka(
        cls, key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes | None]]
    ) -> DlqRecord:
        """Read a DLQ record back from a consumed Kafka message."""
        found = {name: (raw or b"").decode() for name, raw in headers}
        return cls(
            key=key,
            value=value,
            **{
                name: found.get(name, "")
                for name in DLQ_HEADERS
                if name not in {"source_partition", "source_offset"}
            },
            source_partition=int(found.get("source_partition", "-1")),
            source_offset=int(found.get("source_offset", "-1")),
        )


def _kept(raw: bytes) -> bytes:
    """Redacted bytes cut at :data:`MAX_KEPT_BYTES`.

    A digit run the cut splits is dropped whole: what is left of it could pass the
    card-number check where the whole run did not.
    """
    if len(raw) <= MAX_KEPT_BYTES:
        return raw
    return raw[:MAX_KEPT_BYTES].rstrip(b"0123456789 -")
