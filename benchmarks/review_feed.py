"""Cost of keeping the review queue, per decision the feedback service reads.

The feedback service writes every decision to its user's recent history and every
REVIEW/BLOCK to the queue (streams/feedback/_review.py), one pipeline per batch of 500.
This measures that write path against the local Redis (``fraudstream infra up``), next to
the cost of decoding the decision, which the service pays anyway. Its keys go to a
queue of its own (``bench-<uuid>``), left to expire. Run:
``.venv/bin/python benchmarks/review_feed.py`` (a few seconds).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from schemas import Decision, decode, encode
from streams._redis_client import redis_client
from streams.console import ReviewStore
from streams.feedback._review import ReviewFeed
from streams.settings import get_settings

DECISIONS = 20_000
BATCH = 500
REVIEW_EVERY = 50  # 2 % of decisions enter the queue
FEATURES = 35


def main() -> None:
    settings = get_settings().model_copy(update={"console_case_ttl_s": 600})
    store = ReviewStore(
        redis_client(settings.redis_dsn), queue=f"bench-{uuid.uuid4().hex}", case_ttl_s=600
    )
    now = datetime.now(UTC)
    raws = [
        encode(
            Decision(
                tx_id=f"t{i}",
                user_id=f"u{i % 5000}",
                merchant_id=f"m{i % 300}",
                amount=Decimal("10.00"),
                decision="REVIEW" if i % REVIEW_EVERY == 0 else "APPROVE",
                score=0.3,
                features={f"f{k}": 1.0 for k in range(FEATURES)},
                reasons=["HIGH:f1"],
                event_time=now,
                decided_at=now,
                latency_ms=2.0,
            )
        )
        for i in range(DECISIONS)
    ]
    started = time.perf_counter()
    decisions = [decode(raw, Decision) for raw in raws]
    decode_us = (time.perf_counter() - started) / DECISIONS * 1e6
    for history in (settings.console_user_history, 0):
        feed = ReviewFeed(store, settings.model_copy(update={"console_user_history": history}))
        started = time.perf_counter()
        for first in range(0, DECISIONS, BATCH):
            for decision in decisions[first : first + BATCH]:
                feed.decision(decision, labelled=False)
            feed.flush()
        feed_us = (time.perf_counter() - started) / DECISIONS * 1e6
        print(
            f"user history {history:>2}: review feed {feed_us:5.1f} µs/decision "
            f"(decoding the decision: {decode_us:4.1f} µs)"
        )


if __name__ == "__main__":
    main()
