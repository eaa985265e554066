"""Observability on the real broker and Redis: what the metrics say is what happened.

1. Two scorer processes and the feedback service: the counters scraped from every
   process add up to exactly the records on the topics, consumer lag reaches zero on
   every partition, health endpoints answer, and ``fraudstream metrics tail --once
   --json`` finds all three endpoints by itself and reports the same figures.
2. Drift: against a reference taken from a calibration run, the same traffic again keeps
   every PSI low; the same traffic with amounts multiplied pushes the amount feature's
   PSI over the alert threshold while a count feature stays below it, and the scorer's
   summary for the feedback service lands in Redis.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from models.candidate import updated_manifest
from models.manifest import read_manifest, write_manifest
from models.reference import reference_distributions
from operators.features import FEATURE_NAMES
from schemas import Decision
from streams.drift import DriftStatus
from streams.redis_store import RedisStore
from streams.settings import Settings
from tests.doubles import MALFORMED_KINDS, label_payload, malformed_record
from tests.integration._feedback import FeedbackProcess, FeedbackTopics, send
from tests.integration._scorer import (
    FRAUDSTREAM,
    Scorer,
    ScoreTopics,
    create_topics,
    delete_topics,
    isolated_events,
    keyed,
    produce,
    read_all,
    topic_size,
    wait_until,
)

pytestmark = pytest.mark.integration

WAIT_S = 120
FAST = {"FRAUD_LAG_INTERVAL_S": "0.5", "FRAUD_DRIFT_REPORT_INTERVAL_S": "0.5"}


def _tag() -> str:
    return f"o{uuid.uuid4().hex[:8]}"


def _status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:  # not listening yet
        return 0


def _summed(service: Scorer | FeedbackProcess, name: str, processes: int = 1) -> Counter[str]:
    """A metric's samples summed over processes, keyed by their labels."""
    total: Counter[str] = Counter()
    for process in range(processes):
        for labels, value in service.metric(name, process=process).items():
            total[",".join(f"{k}={v}" for k, v in labels)] += value
    return total


def _tail_json(scorer: Scorer, feedback: FeedbackProcess) -> dict[str, Any]:
    """``metrics tail --once --json`` as a script runs it, discovering the endpoints."""
    env = {
        **os.environ,
        "FRAUD_METRICS_PORT": str(scorer.metrics_port),
        "FRAUD_FEEDBACK_METRICS_PORT": str(feedback.metrics_port),
    }
    result = subprocess.run(
        [FRAUDSTREAM, "metrics", "tail", "--once", "--json"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    view: dict[str, Any] = orjson.loads(result.stdout)
    return view


@pytest.fixture
def feedback_topics(servers: Settings, score_topics: ScoreTopics) -> Iterator[FeedbackTopics]:
    """Labels and model-updates topics next to the scorer's decisions topic."""
    fresh = FeedbackTopics.fresh()
    topics = FeedbackTopics(score_topics.decisions, fresh.labels, fresh.model_updates)
    create_topics(servers, topics.names[1:])
    yield topics
    delete_topics(servers, topics.names[1:])


def test_scraped_counters_equal_the_records_and_metrics_tail_reports_them(
    servers: Settings,
    score_topics: ScoreTopics,
    feedback_topics: FeedbackTopics,
    model_dir: Path,
    tmp_path: Path,
) -> None:
    events = isolated_events(2_000, seed=21, tag=_tag())
    kinds = itertools.cycle(MALFORMED_KINDS)
    bad = [malformed_record(event, next(kinds)) for event in events[:40]]
    valid = events[40:]
    with (
        Scorer(score_topics, tmp_path / "scorer.log", model_dir=model_dir, processes=2, env=FAST)
        as scorer,
        FeedbackProcess(feedback_topics, tmp_path / "feedback", env=FAST) as feedback,
    ):  # fmt: skip
        wait_until(
            lambda: (
                all(_status(scorer.metrics_port + i, "/readyz") == 200 for i in (0, 1))
                and feedback.ready()
            ),
            timeout_s=WAIT_S,
            what="/readyz of both scorer processes and the feedback service",
        )
        produce(
            servers,
            score_topics.transactions,
            [*keyed(valid), *((key, value) for key, value, _ in bad)],
        )
        wait_until(
            lambda: (
                topic_size(servers, score_topics.decisions) >= len(valid)
                and topic_size(servers, score_topics.dlq) >= len(bad)
            ),
            timeout_s=WAIT_S,
            what="every record decided or dead-lettered",
            diagnose=scorer.log_tail,
        )
        labelled = valid[:25]
        send(
            servers,
            feedback_topics.labels,
            [label_payload(e["tx_id"], e["user_id"], "fraud" if i % 5 else "legit")
             for i, e in enumerate(labelled)],
        )  # fmt: skip

        def settled() -> bool:
            lag = _summed(scorer, "fraud_consumer_lag_messages", processes=2)
            feedback_lag = _summed(feedback, "fraud_consumer_lag_messages")
            labels = sum(_summed(feedback, "fraud_labels_total").values())
            return (
                len(lag) == 6  # every partition of the input, across the two processes
                and sum(lag.values()) == 0
                and sum(feedback_lag.values()) == 0
                and len(feedback_lag) >= 6  # decisions and labels both committed
                and labels == len(labelled)
            )

        wait_until(settled, timeout_s=WAIT_S, what="zero lag and every label counted")
        decided = _summed(scorer, "fraud_transactions_total", processes=2)
        dead = _summed(scorer, "fraud_dlq_messages_total", processes=2)
        per_process = [sum(scorer.metric("fraud_transactions_total", i).values()) for i in (0, 1)]
        health = [_status(scorer.metrics_port + i, "/healthz") for i in (0, 1)]
        health.append(_status(feedback.metrics_port, "/healthz"))
        view = _tail_json(scorer, feedback)

    decisions = [
        Decision.model_validate_json(r.value) for r in read_all(servers, score_topics.decisions)
    ]
    letters = read_all(servers, score_topics.dlq)
    mix = Counter(d.decision for d in decisions)
    reasons = Counter(r.headers["error_reason"] for r in letters)

    # Scraped directly: each process counts its share, the sum is every record.
    assert health == [200, 200, 200]
    assert all(per_process) and sum(per_process) == len(valid) == len(decisions)
    assert {k.removeprefix("decision="): v for k, v in decided.items()} == mix
    assert {k.removeprefix("reason="): v for k, v in dead.items()} == reasons
    assert sum(reasons.values()) == len(bad)

    # The same figures through `metrics tail`, which found the endpoints itself.
    services = Counter(e["service"] for e in view["endpoints"] if e["up"])
    assert services == {"scorer": 2, "feedback": 1}
    totals = view["totals"]
    assert (totals["decided"], totals["dlq"]) == (len(valid), len(bad))
    assert totals["decisions"] == dict(mix)
    assert totals["dlq_by_reason"] == dict(reasons)
    assert view["shares"]["dlq"] == pytest.approx(len(bad) / (len(valid) + len(bad)))
    assert view["models"]["champion"] == read_manifest(model_dir).version
    assert view["latency_ms_all"]["p99"] is not None and view["latency_ms_all"]["p99"] > 0
    assert view["lag"]["total"] == 0
    assert sum(1 for key in view["lag"]["by_partition"] if key.startswith("scorer/")) == 6
    expected_labels = Counter("fraud" if i % 5 else "legit" for i in range(len(labelled)))
    assert view["feedback"]["labels"] == dict(expected_labels)


# -- 2. drift --------------------------------------------------------------------------


def _scaled_amounts(events: list[dict[str, Any]], factor: int) -> list[dict[str, Any]]:
    return [{**e, "amount": str(Decimal(str(e["amount"])) * factor)} for e in events]


def _reference_model(decisions: list[Decision], model_dir: Path, out: Path) -> Path:
    """The model, with its reference taken from the features and scores it decided with."""
    shutil.copytree(model_dir, out)
    features = np.array(
        [[np.nan if d.features[n] is None else d.features[n] for n in FEATURE_NAMES]
         for d in decisions],
        dtype=np.float64,
    )  # fmt: skip
    scores = np.array([d.score for d in decisions], dtype=np.float64)
    reference = reference_distributions(features, FEATURE_NAMES, scores)
    write_manifest(updated_manifest(read_manifest(out), reference=reference), out)
    return out


def _window_rows(scorer: Scorer) -> float:
    """Rows in the scorer's drift window; 0 while its endpoint is not up yet."""
    scorer.assert_running()
    try:
        return scorer.metric("fraud_drift_window_rows").get((), 0.0)
    except OSError:
        return 0.0


def _psi(scorer: Scorer, feature: str | None = None) -> float:
    if feature is None:
        return scorer.metric("fraud_prediction_drift_psi")[()]
    return scorer.metric("fraud_feature_drift_psi")[(("feature", feature),)]


def test_a_shifted_feature_crosses_the_psi_threshold_and_an_unshifted_one_stays_below(
    servers: Settings, score_topics: ScoreTopics, model_dir: Path, tmp_path: Path
) -> None:
    count, seed = 1_500, 31
    with Scorer(score_topics, tmp_path / "calibration.log", model_dir=model_dir) as scorer:
        produce(
            servers, score_topics.transactions, keyed(isolated_events(count, seed=seed, tag=_tag()))
        )
        wait_until(
            lambda: topic_size(servers, score_topics.decisions) >= count,
            timeout_s=WAIT_S, what="the calibration run's decisions", diagnose=scorer.log_tail,
        )  # fmt: skip
    calibration = [
        Decision.model_validate_json(r.value) for r in read_all(servers, score_topics.decisions)
    ]
    reference_dir = _reference_model(calibration, model_dir, tmp_path / "reference-model")

    topics = ScoreTopics.fresh()
    create_topics(servers, topics.names)
    env = {**FAST, "FRAUD_DRIFT_MIN_ROWS": "500"}
    try:
        with Scorer(topics, tmp_path / "drift.log", model_dir=reference_dir, env=env) as scorer:
            # The same traffic again (other ids): nothing drifts.
            same = isolated_events(count, seed=seed, tag=_tag())
            produce(servers, topics.transactions, keyed(same))
            wait_until(
                lambda: _window_rows(scorer) >= count,
                timeout_s=WAIT_S, what="the unshifted traffic in the drift window",
                diagnose=scorer.log_tail,
            )  # fmt: skip
            steady = {"amount": _psi(scorer, "amount"), "count": _psi(scorer, "user_count_1h")}
            steady_prediction = _psi(scorer)
            steady_outside = scorer.metric("fraud_feature_out_of_range_ratio")

            # Again, with every amount five times larger.
            shifted = _scaled_amounts(isolated_events(count, seed=seed, tag=_tag()), 5)
            produce(servers, topics.transactions, keyed(shifted))
            wait_until(
                lambda: _window_rows(scorer) >= 2 * count,
                timeout_s=WAIT_S, what="the shifted traffic in the drift window",
                diagnose=scorer.log_tail,
            )  # fmt: skip
            drifted = {"amount": _psi(scorer, "amount"), "count": _psi(scorer, "user_count_1h")}
            out_of_range = scorer.metric("fraud_feature_out_of_range_ratio")
            statuses = [
                DriftStatus.from_json(raw) for raw in RedisStore(servers.redis_dsn).drift_statuses()
            ]
    finally:
        delete_topics(servers, topics.names)

    print(
        f"PSI amount {steady['amount']:.4f} -> {drifted['amount']:.3f}, user_count_1h "
        f"{steady['count']:.4f} -> {drifted['count']:.4f}, score {steady_prediction:.4f}"
    )
    assert steady["amount"] < 0.1 and steady["count"] < 0.1, steady
    assert steady_prediction < 0.1
    assert drifted["amount"] > 0.25, drifted  # the alert threshold on feature drift
    assert drifted["count"] < 0.1, drifted
    # Identical amounts stay inside the range training saw; five-fold ones leave it.
    amount = (("feature", "amount"),)
    assert steady_outside[amount] == 0 < out_of_range[amount]
    mine = [s for s in statuses if s.rows == 2 * count]
    assert mine and mine[0].max_feature_psi is not None and mine[0].max_feature_psi > 0.25
