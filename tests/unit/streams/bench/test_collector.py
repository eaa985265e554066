"""Slicing tx_id and degraded cause out of decision bytes without a JSON parse."""

from __future__ import annotations

import orjson

from streams.bench._collector import degraded_cause, tx_number


def decision(tx_id: str, *, degraded: bool = False, cause: str | None = None) -> bytes:
    return orjson.dumps(
        {"schema_version": 1, "tx_id": tx_id, "user_id": "u1", "features": {"amount": 1.0},
         "degraded": degraded, "degraded_cause": cause}
    )  # fmt: skip


def test_the_number_of_a_run_transaction_is_read():
    assert tx_number(decision("tx-7-r1a2b-n1234"), b"tx-7-r1a2b-n") == 1234


def test_another_runs_or_a_probes_records_are_not_ours():
    assert tx_number(decision("tx-7-rffff-n5"), b"tx-7-r1a2b-n") is None
    assert tx_number(decision("bench-probe-abc-0"), b"tx-7-r1a2b-n") is None


def test_anything_but_digits_after_the_prefix_is_not_a_match():
    assert tx_number(decision("tx-7-r1a2b-n1x2"), b"tx-7-r1a2b-n") is None


def test_records_without_a_tx_id_are_ignored():
    assert tx_number(b"not json at all", b"tx-") is None
    assert tx_number(b"", b"tx-") is None


def test_a_dead_letter_holds_the_original_transaction_and_is_read_the_same_way():
    original = orjson.dumps({"tx_id": "tx-7-r1-n42", "user_id": "u1", "amount": 12.5})
    assert tx_number(original, b"tx-7-r1-n") == 42


def test_degraded_cause():
    assert degraded_cause(decision("t", degraded=False)) == ""
    assert degraded_cause(decision("t", degraded=True, cause="no_model")) == "no_model"
    assert degraded_cause(decision("t", degraded=True)) == "unknown"
