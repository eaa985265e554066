"""The decision snapshot the feedback loop keeps per transaction, and the label join.

A label is only useful with what was *scored*: the exact feature vector, the score and
the model version (point-in-time training data, and the input of the online learner).
The Faust table keeps one compact snapshot per ``tx_id`` instead of the whole decision,
so a week of decisions fits in the state store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from models.offline_store import JoinedLabel
from schemas import Decision, Label
from schemas._types import epoch_ms

__all__ = ["Snapshot", "join"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a label is joined with: the decision's identity, verdict and scored features."""

    tx_id: str
    user_id: str
    merchant_id: str | None
    amount: str | None
    event_ms: int
    decision: str
    score: float | None
    model_version: str | None
    features: dict[str, float | None]

    @classmethod
    def of(cls, decision: Decision) -> Snapshot:
        """The snapshot of a validated decision."""
        return cls(
            tx_id=decision.tx_id,
            user_id=decision.user_id,
            merchant_id=decision.merchant_id,
            amount=None if decision.amount is None else str(decision.amount),
            event_ms=epoch_ms(decision.event_time),
            decision=decision.decision,
            score=decision.score,
            model_version=decision.model_version,
            features=dict(decision.features),
        )

    def to_bytes(self) -> bytes:
        """The table value: compact JSON, never a pickle."""
        return orjson.dumps(
            [
                self.tx_id,
                self.user_id,
                self.merchant_id,
                self.amount,
                self.event_ms,
                self.decision,
                self.score,
                self.model_version,
                self.features,
            ]
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> Snapshot:
        """Read a table value written by :meth:`to_bytes`."""
        fields: list[Any] = orjson.loads(raw)
        tx_id, user_id, merchant_id, amount, event_ms, decision, score, version, features = fields
        return cls(
            str(tx_id),
            str(user_id),
            merchant_id,
            amount,
            int(event_ms),
            str(decision),
            score,
            version,
            {str(k): (None if v is None else float(v)) for k, v in features.items()},
        )


def join(label: Label, snapshot: Snapshot) -> JoinedLabel:
    """One verdict joined with the decision it judges (the offline store's row)."""
    return JoinedLabel(
        tx_id=snapshot.tx_id,
        user_id=snapshot.user_id,
        merchant_id=snapshot.merchant_id,
        amount=snapshot.amount,
        event_time=datetime.fromtimestamp(snapshot.event_ms / 1000, tz=UTC),
        label=1 if label.label == "fraud" else 0,
        source=label.source,
        labeled_at=label.labeled_at.astimezone(UTC),
        analyst_id=label.analyst_id,
        decision=snapshot.decision,
        score=snapshot.score,
        model_version=snapshot.model_version,
        features={
            name: None if value is None or math.isnan(value) else value
            for name, value in snapshot.features.items()
        },
    )
