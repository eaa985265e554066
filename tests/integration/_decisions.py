"""Reading decisions back in tests: by tx_id, first copies, exact counts, waiting for topics.

Shared by the scoring-flow integration tests and the fault-injection suite.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from typing import Any

import orjson

from schemas import Decision
from streams.settings import Settings
from tests.integration._scorer import Record, Scorer, topic_size, wait_until

__all__ = [
    "WAIT_S",
    "assert_user_counts_are_exact",
    "decisions_by_tx",
    "first_decisions",
    "run_tag",
    "wait_for_records",
]

WAIT_S = 120  # generous: a busy 2-core machine; a healthy run needs a fraction of it


def run_tag() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def decisions_by_tx(records: list[Record]) -> dict[str, list[Record]]:
    by_tx: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_tx[orjson.loads(record.value)["tx_id"]].append(record)
    return by_tx


def first_decisions(records: list[Record]) -> dict[str, Decision]:
    """One decision per tx_id (the first read), each validated against the contract."""
    return {
        tx_id: Decision.model_validate_json(copies[0].value)
        for tx_id, copies in decisions_by_tx(records).items()
    }


def assert_user_counts_are_exact(
    events: list[dict[str, Any]], decisions: dict[str, Decision]
) -> None:
    """The k-th distinct event of a user counts k in 24 h: nothing lost, nothing counted twice.

    All events are from the last minutes and a user's events are in offset order, so
    ``user_count_24h`` must be exactly the event's rank among the user's distinct events.
    """
    seen: Counter[str] = Counter()
    wrong = []
    for event in events:
        seen[event["user_id"]] += 1
        count = decisions[event["tx_id"]].features["user_count_24h"]
        if count != seen[event["user_id"]]:
            wrong.append((event["tx_id"], count, seen[event["user_id"]]))
    assert not wrong, f"{len(wrong)} wrong user_count_24h (tx, got, want), e.g. {wrong[:5]}"


def wait_for_records(
    scorer: Scorer, settings: Settings, wanted: dict[str, int], timeout_s: float = WAIT_S
) -> None:
    """Poll topic sizes until each topic holds at least its wanted number of records."""

    def sizes() -> dict[str, int]:
        return {topic: topic_size(settings, topic) for topic in wanted}

    def reached() -> bool:
        scorer.assert_running()
        return all(size >= wanted[topic] for topic, size in sizes().items())

    wait_until(
        reached,
        timeout_s=timeout_s,
        what=f"records {wanted}",
        diagnose=lambda: f"have {sizes()}\n{scorer.log_tail()}",
    )
