"""Hot swap on the real broker: a running ``fraudstream score`` follows ``model-updates``.

The scorer runs without FRAUD_MODEL_DIR, so its models come only from the updates this
test publishes (as the registry would: key = role, value = ModelUpdate JSON pointing at a
version folder of a registry root). Model A arrives before traffic, a tampered update is
refused, model B arrives in the middle of paced traffic: every transaction is decided
exactly once, first by A, then by B, never A again after B in any partition. An online
model (one ONNX file, as the feedback service publishes it) is blended into the champion's
scores from the batch after it arrives.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import orjson
import pytest

from operators.engine import DECISION_FEATURES
from operators.scoring import EnsembleScorer, OnlineScorer
from schemas import Decision, ModelUpdate, encode
from streams.settings import Settings
from tests.integration._scorer import (
    PacedProducer,
    Record,
    Scorer,
    ScoreTopics,
    following_scorer,
    isolated_events,
    keyed,
    model_info,
    produce,
    read_all,
    topic_size,
    wait_serving,
    wait_until,
)
from tests.unit.models._trained import model_update, train_tiny, write_aliases
from tests.unit.streams._online_models import online_update, train_online

pytestmark = pytest.mark.integration

WAIT_S = 120  # generous: a busy 2-core machine; a healthy run needs a fraction of it


def wait_decided(scorer: Scorer, settings: Settings, topic: str, count: int) -> None:
    def reached() -> bool:
        scorer.assert_running()
        return topic_size(settings, topic) >= count

    wait_until(
        reached,
        timeout_s=WAIT_S,
        what=f"{count} decisions",
        diagnose=lambda: f"have {topic_size(settings, topic)}\n{scorer.log_tail()}",
    )


def publish(settings: Settings, topic: str, update: ModelUpdate) -> None:
    produce(settings, topic, [(update.role.encode(), encode(update))])


def versions(records: list[Record]) -> list[str | None]:
    return [Decision.model_validate_json(r.value).model_version for r in records]


def test_a_running_scorer_swaps_models_between_batches_without_losing_a_decision(
    servers: Settings, score_topics: ScoreTopics, topic: str, tmp_path: Path
) -> None:
    registry = tmp_path / "registry"  # no aliases.json: nothing to fall back to
    folder_a = train_tiny(registry, "hot-a", seed=3)
    folder_b = train_tiny(registry, "hot-b", seed=7)
    tag = f"h{uuid.uuid4().hex[:8]}"
    events = isolated_events(2_000, seed=21, tag=tag)
    before, during, after = events[:600], events[600:1_800], events[1_800:]

    scorer = following_scorer(score_topics, tmp_path / "scorer.log", topic, registry)
    decisions_topic = score_topics.decisions
    with scorer:
        publish(servers, topic, model_update(folder_a))
        wait_serving(scorer, "hot-a")
        produce(servers, score_topics.transactions, keyed(before))
        wait_decided(scorer, servers, decisions_topic, len(before))

        # A tampered update is refused; A keeps serving.
        publish(servers, topic, model_update(folder_b, sha256="f" * 64))
        wait_until(
            lambda: "model_update_refused" in scorer.log_path.read_text(errors="replace"),
            timeout_s=WAIT_S,
            what="the tampered update refused",
            diagnose=scorer.log_tail,
        )
        assert model_info(scorer).get(("hot-a", "champion")) == 1

        with PacedProducer(servers, score_topics.transactions, keyed(during), rate=300):
            wait_decided(scorer, servers, decisions_topic, len(before) + 150)
            publish(servers, topic, model_update(folder_b))
            wait_serving(scorer, "hot-b", previous="hot-a")
        produce(servers, score_topics.transactions, keyed(after))
        wait_decided(scorer, servers, decisions_topic, len(events))
    assert scorer.returncode == 130, scorer.log_tail()

    records = read_all(servers, decisions_topic)
    decided = Counter(orjson.loads(r.value)["tx_id"] for r in records)
    assert len(records) == len(events), "a decision was lost or duplicated"
    assert set(decided) == {event["tx_id"] for event in events}
    assert set(decided.values()) == {1}

    by_tx = {orjson.loads(r.value)["tx_id"]: r for r in records}
    assert set(versions([by_tx[e["tx_id"]] for e in before])) == {"hot-a"}
    assert set(versions([by_tx[e["tx_id"]] for e in after])) == {"hot-b"}
    assert Counter(versions(records)).keys() == {"hot-a", "hot-b"}
    assert not any(Decision.model_validate_json(r.value).degraded for r in records)

    # One worker decides in offset order: within a partition, never A again after B.
    per_partition: dict[int, list[str | None]] = defaultdict(list)
    for record in records:  # read_all sorts by (partition, offset)
        per_partition[record.partition].extend(versions([record]))
    for partition, sequence in per_partition.items():
        switched = sequence.index("hot-b") if "hot-b" in sequence else len(sequence)
        assert set(sequence[switched:]) <= {"hot-b"}, f"partition {partition}: A after B"

    log = scorer.log_path.read_text(errors="replace")
    refused = [
        orjson.loads(line)
        for line in log.splitlines()
        if line.startswith("{") and "model_update_refused" in line
    ]
    assert [(r["version"], r["reason"]) for r in refused] == [("hot-b", "manifest_hash_mismatch")]


def test_registry_champion_decides_and_a_published_challenger_shadows_and_takes_its_share(
    servers: Settings, score_topics: ScoreTopics, topic: str, tmp_path: Path
) -> None:
    registry = tmp_path / "registry"
    train_tiny(registry, "reg-a", seed=3)
    folder_b = train_tiny(registry, "reg-b", seed=7)
    write_aliases(registry, champion="reg-a")  # the topic is empty: this champion serves
    events = isolated_events(1_000, seed=22, tag=f"s{uuid.uuid4().hex[:8]}")
    first, second = events[:300], events[300:]

    log = tmp_path / "scorer.log"
    env = {"FRAUD_CHALLENGER_TRAFFIC_SHARE": "0.3"}
    with following_scorer(score_topics, log, topic, registry, **env) as scorer:
        produce(servers, score_topics.transactions, keyed(first))
        wait_decided(scorer, servers, score_topics.decisions, len(first))
        publish(servers, topic, model_update(folder_b, role="challenger"))
        wait_serving(scorer, "reg-b", role="challenger")
        produce(servers, score_topics.transactions, keyed(second))
        wait_decided(scorer, servers, score_topics.decisions, len(events))

    by_tx = {
        d.tx_id: d
        for d in (
            Decision.model_validate_json(r.value) for r in read_all(servers, score_topics.decisions)
        )
    }
    assert len(by_tx) == len(events)
    assert {by_tx[e["tx_id"]].model_version for e in first} == {"reg-a"}
    assert all(by_tx[e["tx_id"]].shadow_scores == {} for e in first)
    later = [by_tx[e["tx_id"]] for e in second]
    by_champion = [d for d in later if d.model_version == "reg-a"]
    by_challenger = [d for d in later if d.model_version == "reg-b"]
    assert len(by_champion) + len(by_challenger) == len(later)
    assert 0.15 < len(by_challenger) / len(later) < 0.45  # 30 % of users, by hash
    assert all({"challenger", "challenger:xgboost"} <= d.shadow_scores.keys() for d in by_champion)
    assert all("champion" in d.shadow_scores for d in by_challenger)
    users = defaultdict(set)
    for decision in later:
        users[decision.user_id].add(decision.model_version)
    assert all(len(models) == 1 for models in users.values()), "a user met both models"
    assert not any(d.degraded for d in by_tx.values())


def test_a_published_online_model_is_blended_into_the_champions_scores(
    servers: Settings, score_topics: ScoreTopics, topic: str, tmp_path: Path
) -> None:
    registry = tmp_path / "registry"
    champion = EnsembleScorer.load(train_tiny(registry, "blend-a", seed=3))
    write_aliases(registry, champion="blend-a")  # the online model only comes from the topic
    online_path, online_sha = train_online(tmp_path / "online", "online-1", seed=5)
    online = OnlineScorer.load(online_path, online_sha)
    events = isolated_events(800, seed=23, tag=f"o{uuid.uuid4().hex[:8]}")
    before, after = events[:300], events[300:]

    log = tmp_path / "scorer.log"
    env = {"FRAUD_ONLINE_WEIGHT": "0.4"}
    with following_scorer(score_topics, log, topic, registry, **env) as scorer:
        produce(servers, score_topics.transactions, keyed(before))
        wait_decided(scorer, servers, score_topics.decisions, len(before))

        # A tampered online update is refused; then the real one serves.
        publish(servers, topic, online_update(online_path, "e" * 64))
        wait_until(
            lambda: "model_update_refused" in scorer.log_path.read_text(errors="replace"),
            timeout_s=WAIT_S,
            what="the tampered online update refused",
            diagnose=scorer.log_tail,
        )
        publish(servers, topic, online_update(online_path, online_sha))
        wait_serving(scorer, "online-1", role="online")
        produce(servers, score_topics.transactions, keyed(after))
        wait_decided(scorer, servers, score_topics.decisions, len(events))
    assert scorer.returncode == 130, scorer.log_tail()

    by_tx = {
        d.tx_id: d
        for d in (
            Decision.model_validate_json(r.value) for r in read_all(servers, score_topics.decisions)
        )
    }
    assert len(by_tx) == len(events)
    first = [by_tx[e["tx_id"]] for e in before]
    later = [by_tx[e["tx_id"]] for e in after]
    assert all("online" not in d.member_scores for d in first)
    assert all(d.model_version == "blend-a" and not d.degraded for d in by_tx.values())
    assert all(list(d.features) == list(DECISION_FEATURES) for d in by_tx.values())
    assert {d.merchant_id for d in by_tx.values()} == {e["merchant_id"] for e in events}

    weights = champion.weights
    for decision in later:
        members = decision.member_scores
        assert set(members) == {*weights, "online"}
        # The decision's own features, scored again: the online score of this very row.
        row = np.array(
            [[decision.features[name] for name in online.feature_names]], dtype=np.float64
        )
        assert members["online"] == pytest.approx(float(online.score(row)[0]), abs=1e-5)
        ensemble = sum(weight * members[name] for name, weight in weights.items())
        assert decision.score == pytest.approx(0.6 * ensemble + 0.4 * members["online"], abs=1e-5)

    log_text = scorer.log_path.read_text(errors="replace")
    refused = [
        orjson.loads(line)
        for line in log_text.splitlines()
        if line.startswith("{") and "model_update_refused" in line
    ]
    assert [(r["role"], r["reason"]) for r in refused] == [("online", "file_hash_mismatch")]
