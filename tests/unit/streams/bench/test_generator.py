"""What the generators send: real transactions, pre-encoded, stamped with the send time."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import decode_transaction
from streams.bench._generator import (
    GeneratorPlan,
    GeneratorReport,
    _templates,
    due_slots,
    encode_template,
    merge_reports,
    with_event_time,
)

MS_2027 = 1_800_000_000_123


def simulator_row() -> dict[str, object]:
    return {
        "tx_id": "tx-7-r1-n0", "user_id": "u000791", "card_id": "card-94883515",
        "merchant_id": "m00157", "mcc": "5814", "amount": "3.44", "currency": "USD",
        "country": "US", "lat": 34.01397, "lon": -118.2068, "channel": "pos",
        "device_id": None, "event_time": datetime(2030, 1, 1, tzinfo=UTC),
        "schema_version": 1, "label": 1, "pattern": "card_testing",
    }  # fmt: skip


def test_a_row_becomes_a_valid_transaction_keyed_by_user_and_stamped_when_sent():
    key, head = encode_template(simulator_row(), "tx-7-abc-g1-n42")
    value = with_event_time(head, MS_2027)
    payload = orjson.loads(value)
    assert key == b"u000791"
    assert payload["event_time"] == MS_2027  # not the simulated 2030 time
    assert payload["tx_id"] == "tx-7-abc-g1-n42"
    assert "label" not in payload
    assert "pattern" not in payload
    assert "device_id" not in payload
    tx = decode_transaction(value)
    assert tx.tx_id == "tx-7-abc-g1-n42"
    assert int(tx.event_time.timestamp() * 1000) == MS_2027


_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)
_rows = st.fixed_dictionaries(
    {
        "tx_id": _ids,
        "user_id": _ids,
        "merchant_id": _ids,
        "amount": st.decimals(min_value=0, max_value=10**6, places=2).map(str),
        "currency": st.sampled_from(["EUR", "USD", "GBP"]),
        "lat": st.floats(min_value=-90, max_value=90),
        "lon": st.floats(min_value=-180, max_value=180),
        "channel": st.sampled_from(["pos", "ecom", "atm"]),
        "device_id": st.none() | _ids,
        "event_time": st.datetimes(timezones=st.just(UTC)),
        "schema_version": st.just(1),
        "label": st.integers(0, 1),
        "pattern": st.text(max_size=10),
    }
)


@given(row=_rows, tx_id=_ids, sent_ms=st.integers(min_value=10**12, max_value=10**13 - 1))
def test_spliced_bytes_decode_to_the_same_event_with_the_new_event_time(row, tx_id, sent_ms):
    _, head = encode_template(row, tx_id)
    expected = {k: v for k, v in row.items() if v is not None and k not in ("label", "pattern")}
    expected |= {"tx_id": tx_id, "event_time": sent_ms}
    assert orjson.loads(with_event_time(head, sent_ms)) == orjson.loads(orjson.dumps(expected))


def test_one_head_serves_any_number_of_send_times():
    _, head = encode_template(simulator_row(), "t1")
    first, second = with_event_time(head, MS_2027), with_event_time(head, MS_2027 + 1)
    assert orjson.loads(first)["event_time"] + 1 == orjson.loads(second)["event_time"]


def test_the_schedule_holds_rate_times_duration_transactions():
    assert GeneratorPlan(topic="t", rate=200.0, duration_s=5.0).events == 1000
    assert GeneratorPlan(topic="t", rate=333.3, duration_s=3.0).events == 1000


def test_generators_share_the_schedule_and_have_their_own_prefixes():
    plans = GeneratorPlan(topic="t", rate=100.0, duration_s=1.0, generators=3, run_id="r").split()
    assert [plan.share for plan in plans] == [34, 33, 33]
    assert [plan.prefix for plan in plans] == ["tx-7-r-g0-n", "tx-7-r-g1-n", "tx-7-r-g2-n"]


@given(
    rate=st.floats(min_value=1.0, max_value=200_000.0),
    elapsed=st.floats(min_value=0.0, max_value=30.0),
    generators=st.integers(min_value=1, max_value=8),
)
def test_the_generators_due_slots_add_up_to_the_schedules(rate, elapsed, generators):
    due = [due_slots(elapsed, rate, index, generators) for index in range(generators)]
    assert sum(due) == int(elapsed * rate)
    assert max(due) - min(due) <= 1  # interleaved: nobody runs ahead


def test_a_slot_is_due_at_its_time_not_before():
    assert due_slots(0.0099, 100.0, 0, 1) == 0
    assert due_slots(0.01, 100.0, 0, 1) == 1  # slot 0 is due at 1/rate
    assert due_slots(0.02, 100.0, 1, 2) == 1  # slot 1 belongs to generator 1
    assert due_slots(0.02, 100.0, 0, 2) == 1


def report(index: int, sent: list[int], delivered: int | None = None) -> GeneratorReport:
    return GeneratorReport(
        index=index, prefix=f"p-g{index}-n", start_ns=1_000, sent_ns=np.asarray(sent, np.int64),
        delivered=len(sent) if delivered is None else delivered, failed=0, undelivered=0,
        errors=[], encode_s=0.5,
    )  # fmt: skip


def test_send_times_are_interleaved_back_onto_the_schedule():
    sent = merge_reports([report(1, [11, 31]), report(0, [10, 20, 30])], events=5)
    assert sent.sent_ns.tolist() == [10, 11, 20, 31, 30]
    assert sent.delivered == 5
    assert sent.beyond == 0
    assert sent.start_ns == 1_000
    assert [each["sent"] for each in sent.each] == [3, 2]


def test_the_schedule_stops_at_the_first_slot_a_generator_did_not_send():
    sent = merge_reports([report(0, [10, 20, 30]), report(1, [11])], events=6)
    assert sent.sent_ns.tolist() == [10, 11, 20]
    assert sent.beyond == 1  # slot 4 was sent after the hole at slot 3


@pytest.mark.parametrize("generators", [1, 2, 4])
def test_a_complete_run_keeps_every_slot(generators):
    events = 10
    reports = [report(g, list(range(g, events, generators)), None) for g in range(generators)]
    assert merge_reports(reports, events).sent_ns.tolist() == list(range(events))


def test_generators_split_one_simulated_stream_between_them():
    single = GeneratorPlan(topic="t", rate=10.0, duration_s=3.0, users=50, merchants=10)
    _, alone = _templates(single)
    pair = replace(single, generators=2).split()
    shares = [_templates(plan) for plan in pair]

    def without_tx_id(head: bytes) -> dict[str, object]:
        payload = orjson.loads(with_event_time(head, MS_2027))
        del payload["tx_id"]
        return payload

    interleaved = [shares[k % 2][1][k // 2] for k in range(single.events)]
    assert [without_tx_id(h) for h in interleaved] == [without_tx_id(h) for h in alone]
    assert orjson.loads(with_event_time(shares[1][1][4], 0))["tx_id"] == pair[1].prefix + "4"
    assert all(len(keys) == plan.share for (keys, _), plan in zip(shares, pair, strict=True))
