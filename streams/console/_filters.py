"""The queue's filters as they travel in a URL: parsed strictly, written back the same way.

The filter form is a plain GET form, so a filtered queue is a link an analyst can share
and the live refresh asks for exactly what the page shows. Times are UTC
(``YYYY-MM-DDTHH:MM``, what an ``<input type=datetime-local>`` sends) or RFC 3339.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal, cast
from urllib.parse import urlencode

from schemas import contains_pan
from streams.console._store import QueueFilter
from streams.exceptions import ConsoleError

__all__ = ["FILTER_FIELDS", "filter_params", "parse_filter", "query_string"]

FILTER_FIELDS = ("order", "decision", "rule", "min_score", "max_score", "since", "until")
_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,63}")


def _score(params: Mapping[str, str], name: str) -> float | None:
    text = params.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConsoleError(f"{name}: {text!r} is not a number between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise ConsoleError(f"{name}: {value} is not between 0 and 1")
    return value


def _time(params: Mapping[str, str], name: str) -> datetime | None:
    text = params.get(name, "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConsoleError(f"{name}: {text!r} is not a time like 2026-11-24T09:30 (UTC)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_filter(params: Mapping[str, str]) -> QueueFilter:
    """The filter a query string asks for; raise ConsoleError naming the bad field."""
    for name in FILTER_FIELDS:
        if contains_pan(params.get(name, "")):
            raise ConsoleError(f"{name}: looks like a card number; a filter never holds one")
    order = params.get("order", "newest") or "newest"
    if order not in ("newest", "score"):
        raise ConsoleError(f"order: {order!r} is not newest or score")
    decision = params.get("decision", "").strip().upper() or None
    if decision not in (None, "REVIEW", "BLOCK"):
        raise ConsoleError(f"decision: {decision!r} is not REVIEW or BLOCK")
    rule = params.get("rule", "").strip() or None
    if rule is not None and not _RULE.fullmatch(rule):
        raise ConsoleError("rule: not a rule id")
    wanted = QueueFilter(
        order=cast("Literal['newest', 'score']", order),
        rule=rule,
        decision=cast("Literal['REVIEW', 'BLOCK'] | None", decision),
        min_score=_score(params, "min_score"),
        max_score=_score(params, "max_score"),
        since=_time(params, "since"),
        until=_time(params, "until"),
    )
    low, high = wanted.min_score, wanted.max_score
    if low is not None and high is not None and low > high:
        raise ConsoleError("min_score is above max_score")
    if wanted.since is not None and wanted.until is not None and wanted.since > wanted.until:
        raise ConsoleError("since is after until")
    return wanted


def filter_params(params: Mapping[str, str]) -> dict[str, str]:
    """The filter fields of ``params`` a page may show back: its form and its links.

    Empty fields are left out, and so is a card number typed into any of them.
    """
    return {
        name: params[name]
        for name in FILTER_FIELDS
        if params.get(name) and not contains_pan(params[name])
    }


def query_string(params: Mapping[str, str]) -> str:
    """:func:`filter_params` as a query string."""
    return urlencode(filter_params(params))
