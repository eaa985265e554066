"""``fraudstream label`` against the real broker and Redis, run as an analyst runs it."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import orjson
import redis

from schemas import Label
from streams.redis_store import keys
from streams.settings import Settings
from tests.integration._scorer import FRAUDSTREAM, read_all


def _label(topic: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FRAUD_TOPIC_LABELS": topic}
    return subprocess.run(
        [FRAUDSTREAM, "label", *args], env=env, capture_output=True, text=True, timeout=60
    )


def _labels(settings: Settings, topic: str) -> list[tuple[bytes | None, Label]]:
    return [(r.key, Label.model_validate_json(r.value)) for r in read_all(settings, topic)]


def test_one_verdict_finds_its_user_in_the_decision_cache(
    servers: Settings, topic: str, redis_client: redis.Redis
) -> None:
    tx_id, user_id = f"tx-{uuid.uuid4().hex}", f"u-{uuid.uuid4().hex[:8]}"
    redis_client.set(keys.decision(tx_id), orjson.dumps({"tx_id": tx_id, "user_id": user_id}))
    try:
        done = _label(topic, tx_id, "fraud", "--analyst", "alice", "--note", "confirmed")
    finally:
        redis_client.delete(keys.decision(tx_id))
    assert done.returncode == 0, done.stderr
    ((key, label),) = _labels(servers, topic)
    assert key == user_id.encode()  # keyed like decisions: the join is co-partitioned
    assert (label.tx_id, label.user_id, label.label) == (tx_id, user_id, "fraud")
    assert (label.analyst_id, label.note, label.source) == ("alice", "confirmed", "analyst")


def test_an_unknown_transaction_without_user_is_refused_and_nothing_sent(
    servers: Settings, topic: str
) -> None:
    done = _label(topic, f"tx-{uuid.uuid4().hex}", "legit")
    assert done.returncode == 1
    assert "--user" in done.stderr
    assert _labels(servers, topic) == []


def test_a_file_sends_every_valid_row_and_names_the_refused_ones(
    servers: Settings, topic: str, tmp_path: Path
) -> None:
    path = tmp_path / "chargebacks.csv"
    path.write_text(
        "tx_id,user_id,label\n"
        "tx-a,u-1,fraud\n"
        "tx-b,u-2,maybe\n"
        "tx-c,u-3,legit\n"
        "tx-d,4111111111111111,fraud\n"
    )
    done = _label(topic, "--from", str(path), "--source", "chargeback")
    assert done.returncode == 1  # some rows were refused
    assert "line 3" in done.stderr
    assert "line 5" in done.stderr
    assert "4111111111111111" not in done.stderr + done.stdout  # never echo a card number
    sent = {label.tx_id: label for _, label in _labels(servers, topic)}
    assert sorted(sent) == ["tx-a", "tx-c"]
    assert {label.source for label in sent.values()} == {"chargeback"}
