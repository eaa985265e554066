"""The file, read once and featurised once, with the production operators.

Rows are read with :func:`schemas.history.read_history` (``--map``, event-time order),
checked the way the scorer checks a Transaction (a row it would refuse is counted as
``dlq`` and not decided), de-duplicated by ``tx_id`` (the first occurrence is decided, as
the dataflow's dedupe and decision cache do), then featurised:

- velocity features by :func:`operators.features.features_for_frame`, the dataflow's own
  operators replayed in event-time order;
- the 12 merchant label features by :func:`operators.label_features.label_features_for_frame`
  with the run's label delay: a label counts only once ``event + delay`` has passed, so
  every value is what the feedback service could have written to Redis by then.
  ``merchant_risk`` is their 28-day known fraud share, as the scorer's enrichment reads it.

Both kinds use only the past, so computing them over the whole file at once is
point-in-time: no row's features depend on anything after its event.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pydantic import ValidationError

from models.backtest._config import BacktestConfig, BacktestError
from operators.exceptions import FeatureInputError
from operators.features import FEATURE_NAMES, features_for_frame
from operators.label_features import LABEL_FEATURES, label_features_for_frame
from operators.merchant_labels import (
    MERCHANT_LABEL_FEATURES,
    MERCHANT_RISK_FEATURE,
    merchant_label_values,
)
from schemas import Transaction
from schemas._pan import contains_pan
from schemas.history import HistoryError, parse_mapping, read_history

__all__ = ["NO_LABEL", "Prepared", "prepare"]

#: ``label`` of a row without one (the file has no label column, or a missing value).
NO_LABEL = -1
_MERCHANT_COLUMNS = [LABEL_FEATURES.index(name) for name in MERCHANT_LABEL_FEATURES]
_RISK_COLUMN = FEATURE_NAMES.index("merchant_risk")
_RISK_SOURCE = MERCHANT_LABEL_FEATURES.index(MERCHANT_RISK_FEATURE)
_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$")
_DECIMAL = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,12})?$")
_REQUIRED_IDS = ("tx_id", "user_id", "merchant_id")
_OPTIONAL_IDS = ("card_id", "device_id")
_OPTIONAL_CODES = ("mcc", "currency", "country", "channel")
_TEMPLATE: dict[str, Any] = {
    "tx_id": "t", "user_id": "u", "merchant_id": "m", "amount": "1.00", "event_time": 0,
}  # fmt: skip


@dataclass(frozen=True)
class Prepared:
    """The decided rows in event-time order, their features and what was left out.

    ``features`` are the champion's inputs (:data:`FEATURE_NAMES`), ``merchant_labels``
    the 12 merchant label features; together they are a decision's
    :data:`operators.engine.DECISION_FEATURES`. ``known_ms`` is when each label becomes
    visible (``event + delay``; int64 max without a label).
    """

    frame: pd.DataFrame
    event_ms: NDArray[np.int64]
    labels: NDArray[np.int8]
    known_ms: NDArray[np.int64]
    features: NDArray[np.float64]
    merchant_labels: NDArray[np.float64]
    amounts: NDArray[np.float64]
    events: int
    dlq: int
    dlq_reasons: dict[str, int]
    duplicates: int
    timings: dict[str, float]

    @property
    def rows(self) -> int:
        """Rows decided."""
        return len(self.event_ms)

    @property
    def has_labels(self) -> bool:
        """Whether any row has a label (without, nothing can be trained or evaluated)."""
        return bool((self.labels != NO_LABEL).any())

    def decision_matrix(self, lo: int, hi: int) -> NDArray[np.float64]:
        """Rows ``lo:hi`` over ``DECISION_FEATURES`` (champion inputs, then merchant labels)."""
        return np.hstack((self.features[lo:hi], self.merchant_labels[lo:hi]))


def read_rows(config: BacktestConfig) -> pd.DataFrame:
    """The file in event-time order, cut to ``[start, end)``."""
    try:
        frame = read_history(Path(config.data), parse_mapping(config.mapping))
    except HistoryError as exc:
        raise BacktestError(str(exc)) from exc
    except (ValueError, TypeError, OSError) as exc:
        raise BacktestError(f"{config.data}: cannot be read as transactions: {exc}") from exc
    times = frame["event_time"]
    keep = np.ones(len(frame), dtype=np.bool_)
    if times.isna().any():
        keep &= times.notna().to_numpy()
    if config.start is not None:
        keep &= (times >= pd.Timestamp(config.start)).to_numpy()
    if config.end is not None:
        keep &= (times < pd.Timestamp(config.end)).to_numpy()
    return frame if keep.all() else frame.loc[keep].reset_index(drop=True)


def prepare(frame: pd.DataFrame, config: BacktestConfig, clock: Any) -> Prepared:
    """Validate, de-duplicate and featurise ``frame`` (event-time order) for the run."""
    timings: dict[str, float] = {}
    events = len(frame)
    started = clock()
    bad, reasons = _refused(frame)
    timings["validate"] = clock() - started
    valid = frame.loc[~bad] if bad.any() else frame
    repeated = valid["tx_id"].duplicated().to_numpy()
    rows = valid.loc[~repeated] if repeated.any() else valid
    rows = rows.reset_index(drop=True)
    if rows.empty:
        raise BacktestError(f"{config.data}: no valid transaction in the selected period")
    delay_ms = int(config.label_delay.total_seconds() * 1000)
    event_ms = _epoch_ms(rows["event_time"])
    labels = _labels(rows)

    started = clock()
    try:
        features = features_for_frame(rows)
    except FeatureInputError as exc:
        raise BacktestError(f"{config.data}: {exc}") from exc
    timings["velocity_features"] = clock() - started
    started = clock()
    merchant = _merchant_labels(rows, labels, delay_ms)
    features[:, _RISK_COLUMN] = merchant[:, _RISK_SOURCE]
    timings["label_features"] = clock() - started
    known = np.where(labels != NO_LABEL, event_ms + delay_ms, np.iinfo(np.int64).max)
    return Prepared(
        frame=rows,
        event_ms=event_ms,
        labels=labels,
        known_ms=known.astype(np.int64),
        features=features,
        merchant_labels=merchant,
        amounts=rows["amount"].astype("float64").to_numpy(dtype=np.float64),
        events=events,
        dlq=int(bad.sum()),
        dlq_reasons=reasons,
        duplicates=int(repeated.sum()),
        timings=timings,
    )


def _merchant_labels(
    rows: pd.DataFrame, labels: NDArray[np.int8], delay_ms: int
) -> NDArray[np.float64]:
    if not (labels != NO_LABEL).any():
        empty = np.array(merchant_label_values(None, 0), dtype=np.float64)
        return np.tile(empty, (len(rows), 1))
    labelled = rows.assign(label=np.where(labels == NO_LABEL, np.nan, labels.astype(np.float64)))
    try:
        known = label_features_for_frame(labelled, delay_ms)
    except FeatureInputError as exc:
        raise BacktestError(f"label features: {exc}") from exc
    return np.ascontiguousarray(known[:, _MERCHANT_COLUMNS])


def _labels(rows: pd.DataFrame) -> NDArray[np.int8]:
    if "label" not in rows.columns:
        return np.full(len(rows), NO_LABEL, dtype=np.int8)
    mapped = rows["label"].map({1: 1, 0: 0, "fraud": 1, "legit": 0})  # True == 1, False == 0
    labels: NDArray[np.int8] = mapped.fillna(NO_LABEL).to_numpy(dtype=np.int8)
    return labels


def _epoch_ms(column: pd.Series[Any]) -> NDArray[np.int64]:
    utc = column.dt.tz_convert("UTC").dt.tz_localize(None)
    millis: NDArray[np.int64] = utc.to_numpy(dtype="datetime64[ms]").astype(np.int64)
    return millis


def _refused(frame: pd.DataFrame) -> tuple[NDArray[np.bool_], dict[str, int]]:
    """Rows the scorer would send to the DLQ, and how many per refused field.

    Each distinct value is checked once (ids and amounts repeat), with the rules of
    :class:`schemas.Transaction`: identifiers (pattern, length, no card number), a
    decimal amount of at most 4 places up to 1,000,000, and the optional fields.
    """
    bad = np.zeros(len(frame), dtype=np.bool_)
    reasons: dict[str, int] = {}

    def refuse(name: str, mask: NDArray[np.bool_]) -> None:
        count = int((mask & ~bad).sum())
        if count:
            reasons[f"invalid {name}"] = count
        bad[:] |= mask

    refuse("event_time", frame["event_time"].isna().to_numpy())
    for name in _REQUIRED_IDS:
        refuse(name, _by_value(frame[name], _valid_id, missing_ok=False))
    refuse("amount", _by_value(frame["amount"], _valid_amount, missing_ok=False))
    for name in _OPTIONAL_IDS:
        if name in frame.columns:
            refuse(name, _by_value(frame[name], _valid_id, missing_ok=True))
    for name in _OPTIONAL_CODES:
        if name in frame.columns:
            refuse(name, _by_value(frame[name], _field_check(name), missing_ok=True))
    for name, limit in (("lat", 90.0), ("lon", 180.0)):
        if name in frame.columns:
            values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
            present = frame[name].notna().to_numpy()
            with np.errstate(invalid="ignore"):
                refuse(name, present & ~(np.abs(values) <= limit))
    return bad, reasons


def _by_value(column: pd.Series[Any], check: Any, *, missing_ok: bool) -> NDArray[np.bool_]:
    codes, uniques = pd.factorize(column)
    verdicts = np.array([not check(value) for value in uniques.tolist()] + [not missing_ok])
    refused: NDArray[np.bool_] = verdicts[codes]  # code -1 (missing) takes the last entry
    return refused


def _valid_id(value: Any) -> bool:
    text = str(value)
    return len(text) <= 64 and _IDENTIFIER.match(text) is not None and not contains_pan(text)


def _valid_amount(value: Any) -> bool:
    text = str(value)
    if _DECIMAL.match(text) is None:
        return False
    places = len(text.partition(".")[2])
    return places <= 4 and float(text) <= 1_000_000 and math.isfinite(float(text))


def _field_check(name: str) -> Any:
    def check(value: Any) -> bool:
        try:
            Transaction.model_validate({**_TEMPLATE, name: value})
        except ValidationError:
            return False
        return True

    return check
