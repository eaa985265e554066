"""What a case page shows, computed from the store: features, verdicts, the user's history.

The scorer explains each decision with reason codes such as ``HIGH:amount_zscore`` (the
features that pushed the score, and which way); the case view highlights exactly those,
so the analyst reads the model's own explanation rather than a second guess.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas import Decision, Label
from schemas._types import format_timestamp
from streams.console._store import ReviewStore

__all__ = ["FeatureRow", "VerdictChange", "case_context", "jinja_filters"]

#: Recent decisions of the same user shown on a case page.
USER_EVENTS = 15


@dataclass(frozen=True)
class FeatureRow:
    """One scored feature; ``push`` is HIGH or LOW when it is among the reasons."""

    name: str
    value: float | None
    push: str | None


@dataclass(frozen=True)
class VerdictChange:
    """One label in a case's history, and the verdict it replaced (None: the first)."""

    label: Label
    previous: str | None


def feature_rows(case: Decision) -> list[FeatureRow]:
    """The scored features, those named in the reasons first (in reason order)."""
    pushes: dict[str, str] = {}
    for reason in case.reasons:
        direction, _, name = reason.partition(":")
        if direction in ("HIGH", "LOW") and name in case.features and name not in pushes:
            pushes[name] = direction
    rows = [FeatureRow(name, value, pushes.get(name)) for name, value in case.features.items()]
    order = {name: rank for rank, name in enumerate(pushes)}
    return sorted(rows, key=lambda row: (order.get(row.name, len(order)), row.name))


def verdict_changes(history: list[Label]) -> list[VerdictChange]:
    """Each label with the verdict before it: who gave a verdict and who changed it."""
    changes: list[VerdictChange] = []
    previous: str | None = None
    for label in history:
        changes.append(VerdictChange(label, previous))
        previous = label.label
    return changes


def case_context(store: ReviewStore, case: Decision) -> dict[str, Any]:
    """Everything ``case.html`` renders for ``case``."""
    history = store.history(case.tx_id)
    return {
        "case": case,
        "features": feature_rows(case),
        "changes": verdict_changes(history),
        "verdict": history[-1] if history else None,
        "open": store.is_open(case.tx_id),
        "user_events": [
            event
            for event in store.user_events(case.user_id, USER_EVENTS + 1)
            if event.tx_id != case.tx_id
        ][:USER_EVENTS],
    }


def _score(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _time(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    text = value if isinstance(value, str) else format_timestamp(value)
    return text.replace("T", " ")


def _number(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "missing"
    return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"


def jinja_filters() -> dict[str, Callable[..., str]]:
    """Formatting the templates share: scores, times, feature values."""
    return {"score": _score, "when": _time, "number": _number}
