"""Slicing tx_id and degraded cause out of decision bytes without a JSON parse."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.bench import _collector as collector_module
from streams.bench._collector import Collector, degraded_cause, split_tx_id
from streams.settings import Settings
from tests.doubles import FakeConsumer, FakeMessage


def decision(tx_id: str, *, degraded: bool = False, cause: str | None = None) -> bytes:
    return orjson.dumps(
        {"schema_version": 1, "tx_id": tx_id, "user_id": "u1", "features": {"amount": 1.0},
         "degraded": degraded, "degraded_cause": cause}
    )  # fmt: skip


def test_a_tx_id_splits_into_its_prefix_and_number():
    assert split_tx_id(decision("tx-7-1a2b-g1-n1234")) == (b"tx-7-1a2b-g1-n", 1234)
    assert split_tx_id(decision("bench-probe-abc-17")) == (b"bench-probe-abc-", 17)


def test_a_tx_id_that_does_not_end_in_digits_has_no_number():
    assert split_tx_id(decision("tx-7-1a2b-g1-n1x")) is None
    assert split_tx_id(decision("tx-7-1a2b-g1-n")) is None


def test_records_without_a_tx_id_are_ignored():
    assert split_tx_id(b"not json at all") is None
    assert split_tx_id(b"") is None
    assert split_tx_id(b'{"tx_id":"unterminated') is None


def test_a_dead_letter_holds_the_original_transaction_and_is_read_the_same_way():
    original = orjson.dumps({"tx_id": "tx-7-r1-g0-n42", "user_id": "u1", "amount": 12.5})
    assert split_tx_id(original) == (b"tx-7-r1-g0-n", 42)


@given(prefix=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,40}[A-Za-z._:@/-]", fullmatch=True),
       number=st.integers(min_value=0, max_value=10**9))  # fmt: skip
def test_any_prefix_ending_in_a_non_digit_is_recovered(prefix: str, number: int):
    assert split_tx_id(decision(f"{prefix}{number}")) == (prefix.encode(), number)


def test_degraded_cause():
    assert degraded_cause(decision("t", degraded=False)) == ""
    assert degraded_cause(decision("t", degraded=True, cause="no_model")) == "no_model"
    assert degraded_cause(decision("t", degraded=True)) == "unknown"


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Collector:
    monkeypatch.setattr(collector_module, "Consumer", FakeConsumer)
    return Collector(Settings(), "decisions", "dlq")


def test_records_of_several_generators_land_on_their_schedule_slots(collector: Collector):
    collector.expect(["tx-7-run-g0-n", "tx-7-run-g1-n"], events=6)
    collector.expect_probes("bench-probe-x-")
    fake = collector._consumer
    for g in (0, 1):
        for j in range(3):
            topic = "dlq" if (g, j) == (1, 2) else "decisions"
            fake.queued.append(FakeMessage(topic, decision(f"tx-7-run-g{g}-n{j}"), 100 + j))
    fake.queued.append(FakeMessage("decisions", decision("tx-7-run-g0-n1"), 200))  # a repeat
    fake.queued.append(FakeMessage("decisions", decision("bench-probe-x-5"), 1))
    fake.queued.append(FakeMessage("decisions", decision("tx-7-other-g0-n1"), 1))
    fake.queued.append(FakeMessage("decisions", decision("tx-7-run-g0-n3"), 1))  # past the end
    assert collector.pump(0) == 10
    assert collector.accounted == 6
    assert collector.probes == {5}
    assert collector.foreign == 2
    sent_ns = np.arange(6, dtype=np.int64)
    obs = collector.observations(
        rate=1.0, duration_s=6.0, warmup_s=0.0, start_ns=0, sent_ns=sent_ns
    )
    assert obs.decision_index.tolist() == [0, 2, 4, 1, 3, 2]
    assert obs.dlq_index.tolist() == [5]
    assert obs.dlq_received_ns.size == 1


def test_records_past_the_first_unsent_slot_are_left_out_of_the_observations(collector: Collector):
    collector.expect(["tx-a-g0-n"], events=4)
    collector._consumer.queued = [
        FakeMessage("decisions", decision(f"tx-a-g0-n{j}"), j) for j in range(4)
    ]
    collector.pump(0)
    obs = collector.observations(
        rate=1.0, duration_s=4.0, warmup_s=0.0, start_ns=0, sent_ns=np.zeros(2, dtype=np.int64)
    )
    assert obs.decision_index.tolist() == [0, 1]
    assert obs.decision_ms.tolist() == [0, 1]
