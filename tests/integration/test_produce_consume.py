"""produce -> transactions -> read back, on the real local broker."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from schemas import Decision, decode_transaction, encode
from streams.consuming import read_topic
from streams.producing import RecordProducer
from streams.settings import Settings
from tests.doubles import kafka_partition

pytestmark = pytest.mark.integration
FRAUDSTREAM = str(Path(sys.executable).with_name("fraudstream"))


def test_produce_10000_simulated_events_and_read_them_all_back(servers: Settings, topic: str):
    result = subprocess.run(
        [FRAUDSTREAM, "produce", "--rate", "0", "--count", "10000", "--topic", topic],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "delivered 10,000" in result.stdout
    assert "failed 0" in result.stdout

    partitions_of_user: dict[str, set[int]] = defaultdict(set)
    tx_ids = set()
    for message in read_topic(
        servers, topic, from_beginning=True, max_messages=10_000, idle_timeout_s=30
    ):
        tx = decode_transaction(message.value())
        assert message.key() == tx.user_id.encode()
        assert message.partition() == kafka_partition(message.key(), 6)
        partitions_of_user[tx.user_id].add(message.partition())
        tx_ids.add(tx.tx_id)
    assert len(tx_ids) == 10_000
    assert len(partitions_of_user) > 100  # many users, spread over partitions
    assert all(len(parts) == 1 for parts in partitions_of_user.values())


def test_produce_a_file_with_a_column_mapping(servers: Settings, topic: str, tmp_path: Path):
    import pandas as pd

    frame = pd.DataFrame(
        {
            "TRANSACTION_ID": [1, 2, 3],
            "TX_DATETIME": pd.to_datetime(
                ["2018-04-01 00:00:31", "2018-04-01 00:02:10", "2018-04-01 00:01:00"]
            ),
            "CUSTOMER_ID": [596, 4961, 596],
            "TERMINAL_ID": [3156, 3412, 1365],
            "TX_AMOUNT": [57.16, 81.51, 146.0],
            "TX_FRAUD": [0, 0, 1],
        }
    )
    path = tmp_path / "history.parquet"
    frame.to_parquet(path)
    mapping = [
        "tx_id=TRANSACTION_ID", "user_id=CUSTOMER_ID", "merchant_id=TERMINAL_ID",
        "amount=TX_AMOUNT", "event_time=TX_DATETIME", "label=TX_FRAUD",
    ]  # fmt: skip
    args = [FRAUDSTREAM, "produce", "--from", str(path), "--topic", topic]
    for pair in mapping:
        args += ["--map", pair]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr + result.stdout
    received = [
        decode_transaction(m.value())
        for m in read_topic(servers, topic, from_beginning=True, max_messages=3, idle_timeout_s=20)
    ]
    by_id = {tx.tx_id: tx for tx in received}
    assert set(by_id) == {"1", "2", "3"}
    assert str(by_id["3"].amount) == "146.00"
    assert by_id["1"].user_id == "596"
    assert by_id["1"].event_time.isoformat() == "2018-04-01T00:00:31+00:00"


def test_produce_refuses_a_file_without_the_required_columns(tmp_path: Path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n")
    result = subprocess.run(
        [FRAUDSTREAM, "produce", "--from", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "missing columns" in result.stderr
    assert "--map" in result.stderr


def test_decisions_tail_prints_json_lines_and_stops_at_max(
    servers: Settings, topic: str, monkeypatch: pytest.MonkeyPatch
):
    from datetime import UTC, datetime

    producer = RecordProducer(servers, topic)
    now = datetime.now(UTC)
    for i in range(5):
        decision = Decision(
            tx_id=f"t{i}", user_id="u1", decision="REVIEW", score=0.5,
            event_time=now, decided_at=now, latency_ms=1.5,
        )  # fmt: skip
        producer.send(b"u1", encode(decision))
    assert producer.flush() == 0
    monkeypatch.setenv("FRAUD_TOPIC_DECISIONS", topic)
    result = subprocess.run(
        [FRAUDSTREAM, "decisions", "tail", "--json", "--from-beginning", "--max", "3",
         "--timeout", "20"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [orjson.loads(line)["tx_id"] for line in lines] == ["t0", "t1", "t2"]
