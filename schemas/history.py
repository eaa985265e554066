"""Historical files (Parquet or CSV) in the Transaction shape, with column mapping.

``--map field=COLUMN`` lets a file with other column names (the handbook data, a bank's
export) be used as is: mapped columns are renamed, ids become strings, float amounts
become exact two-decimal strings, naive timestamps are taken as UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from schemas.exceptions import FraudstreamError
from schemas.messages import Transaction

__all__ = [
    "HISTORY_EXTRA_FIELDS",
    "HistoryError",
    "parse_mapping",
    "read_history",
    "transaction_payloads",
]

HISTORY_EXTRA_FIELDS = ("label", "pattern")
_FIELDS = tuple(Transaction.model_fields)
_ID_FIELDS = ("tx_id", "user_id", "card_id", "merchant_id", "device_id")


class HistoryError(FraudstreamError):
    """A historical file cannot be read as transactions (missing column, bad type...)."""


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """Turn ``["tx_id=TRANSACTION_ID", ...]`` into ``{"TRANSACTION_ID": "tx_id", ...}``."""
    mapping: dict[str, str] = {}
    known = set(_FIELDS) | set(HISTORY_EXTRA_FIELDS)
    for pair in pairs:
        field, sep, column = pair.partition("=")
        field, column = field.strip(), column.strip()
        if not sep or not field or not column:
            raise HistoryError(f"--map wants field=COLUMN, got {pair!r}")
        if field not in known:
            raise HistoryError(f"--map {pair!r}: {field!r} is not one of {sorted(known)}")
        mapping[column] = field
    return mapping


def _read_frame(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise HistoryError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".csv":
        return pd.read_csv(path)
    raise HistoryError(f"{path}: unsupported file type {suffix!r} (use .parquet or .csv)")


def read_history(path: Path, mapping: dict[str, str] | None = None) -> pd.DataFrame:
    """Read a file into canonical columns, sorted by event time (stable)."""
    frame = _read_frame(path).rename(columns=mapping or {})
    required = [name for name, f in Transaction.model_fields.items() if f.is_required()]
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise HistoryError(
            f"{path}: missing columns {missing}; map them with --map field=COLUMN "
            f"(columns present: {list(frame.columns)[:20]})"
        )
    keep = [c for c in (*_FIELDS, *HISTORY_EXTRA_FIELDS) if c in frame.columns]
    frame = frame[keep].copy()
    for name in _ID_FIELDS:
        if name in frame.columns:
            column = frame[name]
            if column.notna().all():
                frame[name] = column.astype(str).astype(object)
            else:
                frame[name] = column.map(lambda v: None if pd.isna(v) else str(v)).astype(object)
    if pd.api.types.is_float_dtype(frame["amount"]):
        frame["amount"] = [f"{value:.2f}" for value in frame["amount"].to_numpy()]
    else:
        frame["amount"] = frame["amount"].astype(str)
    times = pd.to_datetime(frame["event_time"], utc=False)
    frame["event_time"] = (
        times.dt.tz_localize("UTC") if times.dt.tz is None else times.dt.tz_convert("UTC")
    )
    if "label" in frame.columns and not pd.api.types.is_integer_dtype(frame["label"]):
        frame["label"] = frame["label"].map({"fraud": 1, "legit": 0, 1: 1, 0: 0}).astype("int8")
    return frame.sort_values("event_time", kind="stable").reset_index(drop=True)


def transaction_payloads(frame: pd.DataFrame) -> Iterator[tuple[bytes, bytes]]:
    """``(key, value)`` pairs ready for Kafka: key = user_id, value = Transaction JSON.

    Rows are not validated here: the scorer validates, and a bad row goes to the DLQ
    there like any other producer's bad record.
    """
    columns = [c for c in _FIELDS if c in frame.columns and c != "event_time"]
    millis = frame["event_time"].to_numpy(dtype="datetime64[ms]").astype(np.int64)
    records = frame[columns].to_dict("records")
    for record, event_ms in zip(records, millis, strict=True):
        payload: dict[str, Any] = {
            k: v
            for k, v in record.items()
            if v is not None and not (isinstance(v, float) and v != v)  # drop None and NaN
        }
        payload["event_time"] = int(event_ms)
        yield str(payload["user_id"]).encode(), orjson.dumps(payload)
