"""What a backtest replays and how: one frozen configuration, checked before any work.

Everything that changes a decision is here (label delay, retraining, warm-up, rules, the
online weight, the training window, the members), so that ``summary.json`` can record the
whole protocol and two runs with equal configurations make equal decisions.

Dates: ``start``/``eval_start`` are the first instant included and ``end``/``eval_end``
the first instant excluded. On the command line a bare date means a whole UTC day:
``--eval-start 2018-07-01`` starts at its midnight, ``--eval-end 2018-08-14`` includes
the 14th (see :func:`parse_bound`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from models.ensemble import MEMBERS
from models.exceptions import BacktestError

__all__ = [
    "BacktestConfig",
    "BacktestError",
    "ChampionFeatures",
    "OnlineLabels",
    "Retrain",
    "iso_ms",
    "parse_bound",
]

Retrain = Literal["weekly", "never"]
#: Which of the file's labels reach the online learner: ``feedback`` (what a fraud team
#: sends live: every fraud, as a chargeback or a verdict, and the legit transactions that
#: were reviewed or blocked) or ``all`` (every label, as if each transaction were judged).
OnlineLabels = Literal["feedback", "all"]
#: What the champion reads: ``live`` (:data:`operators.features.FEATURE_NAMES`, what the
#: engine scores the champion on) or ``decision`` (a what-if: all of
#: :data:`operators.engine.DECISION_FEATURES`, i.e. also the 12 merchant label features
#: every decision carries; the live engine does not serve such a champion yet).
ChampionFeatures = Literal["live", "decision"]
_WEEK = timedelta(days=7)
_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    """The protocol of one backtest run; see the module doc for the date conventions.

    - ``label_delay``: a transaction's label becomes visible this long after its event.
    - ``warmup``: rules-only until ``warmup`` after the midnight (UTC) before the first
      event, when the first champion is trained on the labels known by then.
    - ``retrain``: ``weekly`` trains a candidate at every week boundary (weeks counted
      from ``eval_start``, or from the end of the warm-up) and gates it against the
      champion; ``never`` keeps the first model.
    - ``train_window``: each model trains on the labels known at its cut-off whose
      event time lies within this window before the labels' horizon (cut-off - delay).
    - ``champion_features``: ``live`` or the ``decision`` what-if (see
      :data:`ChampionFeatures`).
    - ``online_weight``: the live blend ``(1 - w) * champion + w * online``.
    - ``batch``: decisions are made a micro-batch of event time at a time; a label that
      becomes visible inside a batch is learnt before the next one (never earlier).
    - ``members`` / ``n_estimators``: the ensemble trained at every cut-off (registry
      names, XGBoost's tree count); ``workers`` processes train candidates ahead of time
      (0: in this process).
    """

    data: Path
    mapping: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    eval_start: datetime | None = None
    eval_end: datetime | None = None
    label_delay: timedelta = timedelta(days=7)
    retrain: Retrain = "weekly"
    warmup: timedelta = timedelta(days=30)
    rules: Path | None = None
    online_weight: float = 0.2
    online_labels: OnlineLabels = "feedback"
    champion_features: ChampionFeatures = "live"
    train_window: timedelta = timedelta(days=7)
    batch: timedelta = timedelta(days=1)
    members: tuple[str, ...] = ("xgboost", "logreg")
    n_estimators: int = 200
    block_target_precision: float = 0.8
    review_share: float = 0.01
    workers: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("start", "end", "eval_start", "eval_end"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise BacktestError(f"{name} must be timezone-aware, got {moment!r}")
        for low, high in (("start", "end"), ("eval_start", "eval_end")):
            first, last = getattr(self, low), getattr(self, high)
            if first is not None and last is not None and first >= last:
                raise BacktestError(f"{low} {first:%Y-%m-%d %H:%M} is not before {high}")
        if self.label_delay < timedelta(0) or self.warmup < timedelta(0):
            raise BacktestError("label_delay and warmup must not be negative")
        if self.retrain not in ("weekly", "never"):
            raise BacktestError(f"retrain must be weekly or never, got {self.retrain!r}")
        if self.online_labels not in ("feedback", "all"):
            raise BacktestError(f"online_labels must be feedback or all: {self.online_labels!r}")
        if self.champion_features not in ("live", "decision"):
            raise BacktestError(
                f"champion_features must be live or decision: {self.champion_features!r}"
            )
        if not 0.0 <= self.online_weight <= 1.0:
            raise BacktestError(f"online_weight must be within [0, 1], got {self.online_weight}")
        if self.train_window <= timedelta(0) or not timedelta(minutes=1) <= self.batch <= _WEEK:
            raise BacktestError("train_window must be positive and batch within 1 minute..7 days")
        unknown = [name for name in self.members if name not in MEMBERS]
        if not self.members or unknown:
            raise BacktestError(f"unknown members {unknown}; known: {sorted(MEMBERS)}")
        if self.n_estimators < 1 or self.workers < 0:
            raise BacktestError("n_estimators must be >= 1 and workers >= 0")
        if not 0.0 < self.block_target_precision <= 1.0 or not 0.0 < self.review_share < 1.0:
            raise BacktestError("block_target_precision must be in (0, 1], review_share in (0, 1)")

    def describe(self) -> dict[str, object]:
        """The protocol as JSON-ready values (``summary.json``'s ``protocol``)."""
        from models.pit import format_duration

        return {
            "data": str(self.data),
            "mapping": list(self.mapping),
            "start": _iso(self.start),
            "end": _iso(self.end),
            "eval_start": _iso(self.eval_start),
            "eval_end": _iso(self.eval_end),
            "label_delay": format_duration(self.label_delay),
            "retrain": self.retrain,
            "warmup": format_duration(self.warmup),
            "rules": "default" if self.rules is None else str(self.rules),
            "online_weight": self.online_weight,
            "online_labels": self.online_labels,
            "champion_features": self.champion_features,
            "train_window": format_duration(self.train_window),
            "batch": format_duration(self.batch),
            "members": list(self.members),
            "n_estimators": self.n_estimators,
            "block_target_precision": self.block_target_precision,
            "review_share": self.review_share,
        }


def parse_bound(text: str, *, end: bool = False) -> datetime:
    """A ``--start``/``--end`` value: a date (whole UTC day) or an RFC 3339 instant.

    With ``end=True`` a bare date means the midnight *after* it, so the day is included;
    an instant is used as is (the first instant excluded). No zone means UTC.
    """
    value = text.strip()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise BacktestError(f"{text!r}: use a date (2018-07-01) or an RFC 3339 time") from exc
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if end and len(value) == len("2018-07-01"):
        moment += _DAY
    return moment


def iso_ms(epoch_ms: int) -> str:
    """An epoch-milliseconds instant as the report writes times: ISO 8601, UTC, ``Z``."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=epoch_ms)
    return moment.isoformat().replace("+00:00", "Z")


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
