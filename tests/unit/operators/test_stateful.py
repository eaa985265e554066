"""Dedupe of decisions by tx_id: a repeat carries the first decision, payload and verdict."""

from __future__ import annotations

import orjson

from operators.stateful import DecidedTx, build_dedupe

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
