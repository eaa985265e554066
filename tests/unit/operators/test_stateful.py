"""Stateful steps: dedupe of decisions by tx_id; a merchant's batch counted in event-time order.

A repeat carries the first decision, payload and verdict.
"""

from __future__ import annotations

import orjson

from operators.engine import FeaturedTx
from operators.stateful import DecidedTx, build_dedupe, build_merchant
from schemas import decode_transaction
from tests.doubles import now_ms, transaction_payload

HOUR_MS = 3_600_000


def decided(tx_id: str, verdict: str, cause: str | None, event_ms: int = 1_000) -> DecidedTx:
    payload = orjson.dumps({"tx_id": tx_id, "decision": verdict, "degraded_cause": cause})
    return DecidedTx(
        tx_id=tx_id,
        user_id="u-1",
        payload=payload,
        event_ms=event_ms,
        produced_ms=event_ms,
        decision=verdict,
        degraded_cause=cause,
    )


def test_a_repeat_is_re_emitted_with_the_first_payload_and_verdict() -> None:
    logic = build_dedupe(HOUR_MS)(None)
    first = decided("tx-1", "BLOCK", None)
    # The repeat was decided afresh upstream (without its window features): another verdict.
    repeat = decided("tx-1", "APPROVE", "redis_unavailable")

    out, _ = logic.on_batch([first, decided("tx-2", "APPROVE", None), repeat])

    assert out[2].payload == first.payload
    assert out[2].replayed
    # What metrics count must be the verdict that was re-emitted, not the fresh one.
    assert (out[2].decision, out[2].degraded_cause) == ("BLOCK", None)
    assert not out[0].replayed
    assert not out[1].replayed


def test_a_repeat_survives_a_snapshot_and_restore() -> None:
    builder = build_dedupe(HOUR_MS)
    logic = builder(None)
    first = decided("tx-1", "REVIEW", "no_model")
    logic.on_batch([first])

    restored = builder(logic.snapshot())
    out, _ = restored.on_batch([decided("tx-1", "APPROVE", None)])

    assert (out[0].payload, out[0].decision, out[0].degraded_cause) == (
        first.payload,
        "REVIEW",
        "no_model",
    )


def test_a_repeat_beyond_the_horizon_is_decided_afresh() -> None:
    logic = build_dedupe(HOUR_MS)(None)
    logic.on_batch([decided("tx-1", "BLOCK", None, event_ms=0)])
    logic.on_batch([decided("tx-9", "APPROVE", None, event_ms=2 * HOUR_MS)])

    out, _ = logic.on_batch([decided("tx-1", "APPROVE", None, event_ms=0)])

    assert (out[0].decision, out[0].replayed) == ("APPROVE", False)


def shared_merchant_batch(t0: int) -> list[FeaturedTx]:
    """One partition's batch at one merchant, in event-time order: a, b, a, b."""
    items = []
    for k, (user, amount) in enumerate([("u-a", "10.00"), ("u-b", "20.00"),
                                        ("u-a", "30.00"), ("u-b", "40.00")]):  # fmt: skip
        payload = transaction_payload(
            tx_id=f"tx-{k}", user_id=user, merchant_id="m-shared", amount=amount
        )
        payload["event_time"] = t0 + k * 1_000
        tx = decode_transaction(orjson.dumps(payload))
        items.append(FeaturedTx(tx=tx, features={}, produced_ms=t0, event_ms=t0 + k * 1_000))
    return items


def test_a_merchant_counts_a_batch_in_event_time_order_whatever_the_user_grouping() -> None:
    # The user step hands the merchant step a batch grouped by user (a@0, a@2, b@1, b@3):
    # the merchant's features must be those of the events one by one in event-time order,
    # which any other batching of the same partition gives too.
    t0 = now_ms() - 60_000
    one_by_one = build_merchant(HOUR_MS)(None)
    want = {}
    for item in shared_merchant_batch(t0):
        one_by_one.on_batch([item])
        want[item.tx.tx_id] = item.features

    batched = build_merchant(HOUR_MS)(None)
    a0, b1, a2, b3 = shared_merchant_batch(t0)
    out, _ = batched.on_batch([a0, a2, b1, b3])

    assert [item.tx.tx_id for item in out] == ["tx-0", "tx-2", "tx-1", "tx-3"]
    assert {item.tx.tx_id: item.features for item in out} == want
    # (in the order given, a@2 would miss b@1: 2 events and 1 user in the hour, not 3 and 2)
    assert (want["tx-2"]["merchant_count_1h"], want["tx-2"]["merchant_distinct_users_1h"]) == (
        3.0,
        2.0,
    )
