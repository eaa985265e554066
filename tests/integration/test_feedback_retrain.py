"""The weekly retrain, fired by the feedback service's schedule on a clock set near Monday
03:00, trains on the offline store plus history, passes the gate, and the new champion
reaches a running scorer through ``model-updates``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from models.registry import ModelRegistry
from models.simulator import SimulatorConfig, simulate_history
from schemas import Decision, ModelUpdate
from streams.drift import DriftStatus
from streams.redis_store import RedisStore, keys
from streams.settings import Settings
from tests.integration._feedback import FeedbackProcess, FeedbackTopics
from tests.integration._scorer import (
    PacedProducer,
    ScoreTopics,
    create_topics,
    delete_topics,
    following_scorer,
    isolated_events,
    keyed,
    read_all,
    topic_size,
    wait_serving,
    wait_until,
)

#: Five seconds before the default schedule ("0 3 * * 1": Monday 03:00 UTC) fires.
CLOCK_START = "2026-11-30T02:59:55Z"


@pytest.fixture
def topics(servers: Settings) -> Iterator[tuple[ScoreTopics, FeedbackTopics]]:
    scoring = ScoreTopics.fresh()
    feedback = FeedbackTopics(scoring.decisions, f"{scoring.decisions}-labels",
                              f"{scoring.decisions}-model-updates")  # fmt: skip
    create_topics(servers, [*scoring.names, feedback.labels], partitions=3)
    create_topics(servers, [feedback.model_updates], partitions=1)
    yield scoring, feedback
    delete_topics(servers, [*scoring.names, feedback.labels, feedback.model_updates])


def test_the_schedule_retrains_and_the_new_champion_reaches_the_scorer(
    servers: Settings, topics: tuple[ScoreTopics, FeedbackTopics], tmp_path: Path
) -> None:
    scoring, feedback = topics
    history = tmp_path / "history.parquet"
    simulate_history(SimulatorConfig(users=300, merchants=60, days=21, seed=5)).to_parquet(history)
    state = tmp_path / "state"
    registry_dir = state / "registry"
    registry_dir.mkdir(parents=True)
    scorer = following_scorer(scoring, tmp_path / "scorer.log", feedback.model_updates,
                              registry_dir)  # fmt: skip
    service = FeedbackProcess(
        feedback,
        state,
        env={
            "FRAUD_FEEDBACK_CLOCK_START": CLOCK_START,
            "FRAUD_RETRAIN_HISTORY": str(history),
            "FRAUD_RETRAIN_LABEL_DELAY": "3d",
        },
    )
    events = keyed(isolated_events(12_000, seed=8, tag=uuid.uuid4().hex[:8]))
    traffic = PacedProducer(servers, scoring.transactions, events, rate=40)
    with scorer, service, traffic:
        wait_until(service.ready, timeout_s=90, what="feedback ready", diagnose=service.log_tail)

        def retrained() -> bool:
            service.assert_running()
            return service.value("fraud_retrain_runs_total", outcome="champion") == 1

        wait_until(retrained, timeout_s=240, what="the scheduled retrain",
                   diagnose=service.log_tail)  # fmt: skip
        champion = ModelRegistry(registry_dir).aliases().champion
        assert champion is not None
        wait_serving(scorer, champion)
        served_from = traffic.sent
        wait_until(lambda: traffic.sent > served_from + 80, timeout_s=30, what="more traffic")
        traffic.finish()
        assert service.value("fraud_retrain_runs_total", outcome="failed") == 0
    wait_until(lambda: topic_size(servers, scoring.decisions) >= traffic.sent, timeout_s=60,
               what="every transaction decided")  # fmt: skip

    records = read_all(servers, feedback.model_updates)
    updates = [ModelUpdate.model_validate_json(r.value) for r in records if r.key == b"champion"]
    assert [u.version for u in updates] == [champion]
    decisions = [
        Decision.model_validate_json(r.value) for r in read_all(servers, scoring.decisions)
    ]
    served = [d for d in decisions if d.model_version == champion]
    assert served, "no decision was made with the retrained champion"
    first = min(d.decided_at for d in served)
    swap_s = (first - updates[0].published_at).total_seconds()
    print(f"promoted retrain -> first decision with it: {swap_s * 1000:.0f} ms")
    # Before the retrain there was no model: those decisions were rules-only.
    assert all(d.degraded_cause == "no_model" for d in decisions if d.model_version is None)
    assert datetime.now(UTC) > first


def test_sustained_prediction_drift_retrains_when_enabled(
    servers: Settings,
    topics: tuple[ScoreTopics, FeedbackTopics],
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    _, feedback = topics
    history = tmp_path / "history.parquet"
    simulate_history(SimulatorConfig(users=300, merchants=60, days=21, seed=6)).to_parquet(history)
    for stale in redis_client.scan_iter(match=keys.drift("*")):  # other tests' scorers
        redis_client.delete(stale)
    store = RedisStore(servers.redis_dsn)
    reporter = f"test-{uuid.uuid4().hex[:8]}"

    def report(psi: float) -> None:  # what a scorer process writes every interval
        status = DriftStatus(reporter, "v-test", 5_000, psi, psi, at=time.time())
        store.write_drift_status(reporter, status.to_json(), ttl_s=30)

    service = FeedbackProcess(
        feedback,
        tmp_path / "state",
        env={
            "FRAUD_RETRAIN_ON_DRIFT": "true",
            "FRAUD_DRIFT_RETRAIN_AFTER_S": "3",
            "FRAUD_DRIFT_REPORT_INTERVAL_S": "0.5",
            "FRAUD_RETRAIN_HISTORY": str(history),
            "FRAUD_RETRAIN_LABEL_DELAY": "3d",
        },
    )
    try:
        with service:
            wait_until(service.ready, timeout_s=90, what="feedback ready",
                       diagnose=service.log_tail)  # fmt: skip
            for _ in range(12):  # 6 s of drift below the threshold: no retrain
                report(0.15)
                time.sleep(0.5)
            calm = service.value("fraud_drift_retrain_triggers_total")

            def retrained() -> bool:
                report(0.4)
                service.assert_running()
                return service.value("fraud_retrain_runs_total", outcome="champion") == 1

            wait_until(retrained, timeout_s=240, poll_s=0.5, what="the drift-triggered retrain",
                       diagnose=service.log_tail)  # fmt: skip
            triggers = service.value("fraud_drift_retrain_triggers_total")
    finally:
        redis_client.delete(keys.drift(reporter))

    assert (calm, triggers) == (0, 1)
    champion = ModelRegistry(tmp_path / "state" / "registry").aliases().champion
    assert champion is not None
