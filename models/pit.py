"""Point-in-time training sets: a model trained "as of" a cut-off sees only what was known.

Two leaks make offline metrics lie about production:

- *future events in features*: velocity features must be computed from the past only.
  Every row is replayed, in event-time order, through
  :func:`operators.features.features_for_frame` (the code the live scorer runs, never a
  second implementation), and only rows at or before the cut-off are replayed at all.
- *labels not yet known*: a chargeback arrives weeks after the purchase. A row's label
  is used only if ``event_time + label_delay <= cut-off``; younger rows still count in
  the velocity features of later rows (as they did live) but are not training examples.

The cut-off defaults to the newest event in the data, i.e. "train now on everything we
have", and ``--until`` replays a retrain as it would have run on an earlier day.

``merchant_risk`` is served from labels (the merchant's known fraud share over 28 days,
kept by the feedback service), so training fills it the same way by default: from
:func:`operators.label_features.label_features_for_frame` with the set's label delay,
counting only the labels known at each event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from models.exceptions import TrainingError
from models.training_set import TrainingSet, build_training_set
from operators.exceptions import FeatureInputError
from operators.features import FEATURE_NAMES, MerchantRisk
from operators.label_features import LABEL_FEATURES, label_features_for_frame

__all__ = [
    "DEFAULT_LABEL_DELAY",
    "PointInTimeSet",
    "format_duration",
    "parse_cutoff",
    "parse_duration",
    "point_in_time_dataset",
    "point_in_time_training_set",
]

#: Typical time for an analyst verdict or chargeback to arrive (the handbook uses 7 days).
DEFAULT_LABEL_DELAY = timedelta(days=7)

_UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1)}
_UNITS |= {"m": timedelta(minutes=1), "s": timedelta(seconds=1)}
_DURATION = re.compile(r"(?:\d+[wdhms])+")
_DURATION_PART = re.compile(r"(\d+)([wdhms])")
_RISK_COLUMN = FEATURE_NAMES.index("merchant_risk")
_RISK_FROM_LABELS = LABEL_FEATURES.index("merchant_known_fraud_share_28d")


def parse_duration(text: str) -> timedelta:
    """``7d``, ``12h``, ``30m``, ``45s``, ``2w`` or a sum such as ``1d12h``."""
    compact = text.strip().lower()
    if not _DURATION.fullmatch(compact):
        raise TrainingError(f"duration {text!r}: use a number and a unit w/d/h/m/s, e.g. 7d or 12h")
    return sum(
        (int(count) * _UNITS[unit] for count, unit in _DURATION_PART.findall(compact)),
        timedelta(0),
    )


def format_duration(delay: timedelta) -> str:
    """The inverse of :func:`parse_duration` for display: ``7d``, ``1d12h``, ``0s``."""
    seconds = int(delay.total_seconds())
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def parse_cutoff(text: str) -> datetime:
    """An RFC 3339 time or a date; a date means midnight UTC at its start, no zone means UTC.

    ``--until 2025-03-20`` therefore trains as a job running at 00:00 UTC on 20 March
    would have: with the events up to that instant.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise TrainingError(
            f"cut-off {text!r}: use a date (2025-03-20) or an RFC 3339 time"
        ) from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class PointInTimeSet:
    """A training set as of ``cutoff``, with what evaluation and the manifest need besides.

    ``training`` rows are the examples whose label was known at the cut-off;
    ``user_ids`` is row-aligned with them (for Card Precision@100), and so is
    ``tx_ids`` (None when the set was built without them; merging labels from the
    offline store needs them). ``replayed`` rows went through the feature code;
    ``withheld`` labelled rows were too young to use.
    """

    training: TrainingSet
    user_ids: NDArray[np.object_]
    cutoff: datetime
    label_delay: timedelta
    replayed: int
    withheld: int
    tx_ids: NDArray[np.object_] | None = None

    @property
    def labels_known_until(self) -> datetime:
        """Latest event time whose label the training set may use."""
        return self.cutoff - self.label_delay


def point_in_time_dataset(
    frame: pd.DataFrame,
    until: datetime | None = None,
    label_delay: timedelta = DEFAULT_LABEL_DELAY,
    *,
    merchant_risk: MerchantRisk | None = None,
) -> PointInTimeSet:
    """Replay ``frame`` up to the cut-off and keep the rows whose label was known by then.

    ``frame`` is history as ``schemas.history.read_history`` returns it (tz-aware
    ``event_time``, a ``label`` column; missing labels allowed), in arrival order.
    ``until`` defaults to the newest event time. A ``tx_id`` delivered twice is one
    example (its last known label), as the dataflow counts it once. ``merchant_risk``
    must itself be point-in-time (see :func:`operators.features.features_for_frame`);
    without it the feature is the merchant's fraud share among its labels known at the
    event (``event_time + label_delay`` before it) in the 28 days before, as served.
    """
    missing = [column for column in ("label", "event_time", "user_id") if column not in frame]
    if missing:
        raise TrainingError(f"history lacks {missing}; columns: {list(frame.columns)[:20]}")
    if label_delay < timedelta(0):
        raise TrainingError(f"label delay must not be negative, got {label_delay}")
    if frame.empty:
        raise TrainingError("the history is empty")
    times = _utc_times(frame["event_time"])
    cutoff = (
        times.max().to_pydatetime()
        if until is None
        else (until.replace(tzinfo=UTC) if until.tzinfo is None else until.astimezone(UTC))
    )
    in_past = np.asarray(times <= pd.Timestamp(cutoff))
    if not in_past.any():
        raise TrainingError(f"no event at or before the cut-off {cutoff:%Y-%m-%d %H:%M:%S}Z")
    past = frame.loc[in_past]
    past_times = times[in_past]
    labelled = past["label"].notna().to_numpy()
    known = labelled & np.asarray(past_times <= pd.Timestamp(cutoff - label_delay))
    example = known.copy()
    if known.any():  # one example per tx_id: the last one whose label is known
        example[known] = ~past.loc[known, "tx_id"].duplicated(keep="last").to_numpy()
    if not example.any():
        span = f"{past_times.min():%Y-%m-%d %H:%M} .. {past_times.max():%Y-%m-%d %H:%M}"
        raise TrainingError(
            f"no label is known at the cut-off {cutoff:%Y-%m-%d %H:%M}Z with a label delay "
            f"of {format_duration(label_delay)} (events {span} UTC): move --until later or "
            "shorten --label-delay"
        )
    labels: pd.Series[Any] = past["label"].astype(object).where(example, None)
    training = build_training_set(past.assign(label=labels), merchant_risk=merchant_risk)
    if merchant_risk is None:  # build_training_set keeps exactly the ``example`` rows
        training.features[:, _RISK_COLUMN] = _risk_from_labels(past, label_delay)[example]
    return PointInTimeSet(
        training=training,
        user_ids=past["user_id"].to_numpy(dtype=object)[example],
        cutoff=cutoff,
        label_delay=label_delay,
        replayed=int(in_past.sum()),
        withheld=int((labelled & ~known).sum()),
        tx_ids=past["tx_id"].to_numpy(dtype=object)[example],
    )


def point_in_time_training_set(
    frame: pd.DataFrame,
    until: datetime | None = None,
    label_delay: timedelta = DEFAULT_LABEL_DELAY,
    *,
    merchant_risk: MerchantRisk | None = None,
) -> TrainingSet:
    """Just the :class:`TrainingSet` of :func:`point_in_time_dataset` (same rules)."""
    return point_in_time_dataset(frame, until, label_delay, merchant_risk=merchant_risk).training


def _risk_from_labels(frame: pd.DataFrame, label_delay: timedelta) -> NDArray[np.float64]:
    """Each row's merchant fraud share over the labels known at its event, 28 days back.

    Only labels of ``frame`` count, each known ``label_delay`` after its event: the rows
    are at or before the cut-off, so every label used was known at the cut-off too.
    """
    delay_ms = label_delay // timedelta(milliseconds=1)
    try:
        known = label_features_for_frame(frame, delay_ms)
    except FeatureInputError as exc:
        raise TrainingError(f"merchant risk from labels: {exc}") from exc
    risk: NDArray[np.float64] = known[:, _RISK_FROM_LABELS]
    return risk


def _utc_times(column: pd.Series[Any]) -> pd.DatetimeIndex:
    if not isinstance(column.dtype, pd.DatetimeTZDtype):
        raise TrainingError(f"event_time must be tz-aware datetimes, got {column.dtype}")
    return pd.DatetimeIndex(column).tz_convert(UTC)
