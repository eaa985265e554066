"""Labels in: one verdict from the command line, or a file of them, onto ``labels``.

The ``labels`` topic is keyed by ``user_id`` like ``decisions`` so the feedback service
can join them; an analyst who only knows the transaction id gets its user from the
Redis decision cache. Every row of a file ends up sent or reported with its line and
reason, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
from pydantic import ValidationError

from schemas import Label, encode
from schemas.codec import validation_message
from schemas.exceptions import FraudstreamError
from streams.producing import RecordProducer
from streams.redis_store import keys
from streams.settings import Settings

__all__ = [
    "LabelError",
    "LabelFileReport",
    "label_rows",
    "lookup_user",
    "make_label",
    "send_labels",
]

_VERDICTS = {"fraud": "fraud", "legit": "legit", "1": "fraud", "0": "legit", "true": "fraud"}
_VERDICTS |= {"false": "legit", "1.0": "fraud", "0.0": "legit"}


class LabelError(FraudstreamError):
    """A label cannot be made or sent (unknown transaction, bad file, broker refused)."""


def make_label(
    tx_id: str,
    user_id: str,
    verdict: str,
    *,
    source: str = "analyst",
    analyst_id: str | None = None,
    note: str | None = None,
    labeled_at: datetime | None = None,
) -> Label:
    """A validated Label; ``verdict`` may be fraud/legit or 1/0."""
    label = _VERDICTS.get(str(verdict).strip().lower())
    if label is None:
        raise LabelError(f"label {verdict!r}: use fraud or legit (or 1 / 0)")
    try:
        return Label(
            tx_id=tx_id,
            user_id=user_id,
            label=label,  # type: ignore[arg-type]
            source=source,  # type: ignore[arg-type]
            labeled_at=labeled_at or datetime.now(UTC),
            analyst_id=analyst_id,
            note=note,
        )
    except ValidationError as exc:
        raise LabelError(validation_message(exc)[1]) from None


def lookup_user(redis_client: Any, tx_id: str) -> str | None:
    """The user of a decided transaction, from the decision cache (None when not there)."""
    raw = redis_client.get(keys.decision(tx_id))
    if raw is None:
        return None
    user = orjson.loads(raw).get("user_id")
    return user if isinstance(user, str) else None


@dataclass
class LabelFileReport:
    """What became of a file's rows: sent, or refused with line number and reason."""

    rows: int = 0
    sent: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in {".jsonl", ".ndjson"}:
            return pd.read_json(path, lines=True, dtype=False)
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise LabelError(f"{path}: cannot read labels ({exc})") from exc


def _utc(value: object) -> datetime | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    moment: datetime = stamp.to_pydatetime()
    return moment


def label_rows(path: Path, defaults: Mapping[str, str | None]) -> Iterator[tuple[int, Label | str]]:
    """``(line, Label)`` or ``(line, reason)`` for each row of a CSV, JSON-lines or Parquet file.

    Columns: ``tx_id``, ``user_id``, ``label`` (fraud/legit or 1/0); optional
    ``source``, ``analyst_id``, ``note``, ``labeled_at``. ``defaults`` fill absent ones.
    """
    frame = _read_table(path)
    missing = [name for name in ("tx_id", "user_id", "label") if name not in frame.columns]
    if missing:
        raise LabelError(f"{path}: missing columns {missing} (has {list(frame.columns)})")
    first_line = 2 if path.suffix.lower() == ".csv" else 1  # CSV line 1 is the header
    for offset, record in enumerate(frame.to_dict(orient="records")):
        line = first_line + offset
        values = {k: (None if v is None or v == "" or v != v else v) for k, v in record.items()}
        try:
            labeled_at = _utc(values.get("labeled_at"))
            yield (
                line,
                make_label(
                    str(values["tx_id"]),
                    str(values["user_id"]),
                    str(values["label"]),
                    source=str(values.get("source") or defaults.get("source") or "analyst"),
                    analyst_id=values.get("analyst_id") or defaults.get("analyst_id"),
                    note=values.get("note"),
                    labeled_at=labeled_at,
                ),
            )
        except (LabelError, ValueError, TypeError) as exc:
            yield line, str(exc)


def send_labels(
    settings: Settings,
    labels: Iterator[tuple[int, Label | str]],
    *,
    on_row: Callable[[int], None] | None = None,
) -> LabelFileReport:
    """Send every valid label (keyed by user_id) and wait until the broker has them all."""
    producer = RecordProducer(settings, settings.topic_labels)
    report = LabelFileReport()
    for line, item in labels:
        report.rows += 1
        if isinstance(item, str):
            report.refused.append((line, item))
        else:
            producer.send(item.user_id.encode(), encode(item))
        if on_row is not None:
            on_row(report.rows)
    undelivered = producer.flush(30.0)
    report.sent = producer.stats.delivered
    if undelivered or producer.stats.failed:
        errors = "; ".join(producer.stats.errors) or f"{undelivered} undelivered"
        raise LabelError(f"{report.sent} label(s) sent, the rest refused by Kafka: {errors}")
    return report
