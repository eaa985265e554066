"""Fault 7: a 10x traffic spike for 30 s.

The scorer is sized for its base load; a spike must turn into a backlog in Kafka (where
it is durable and bounded by the topic, not by the scorer's memory) that drains once the
spike ends, after which latency is back within its budget.

Everything is measured from the decisions themselves: ``decided_at`` says when, and
``latency_ms`` (decision time minus the record's producer timestamp) how late. A
record's produce time is therefore ``decided_at - latency_ms``, which also gives the
backlog at any instant (produced so far minus decided so far) without sampling Kafka.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from schemas import Decision
from streams.producing import DeliveryStats, RecordProducer
from streams.settings import Settings
from tests.integration._decisions import WAIT_S, first_decisions, run_tag, wait_for_records
from tests.integration._scorer import (
    Scorer,
    ScoreTopics,
    isolated_events,
    keyed,
    read_all,
    topic_size,
    wait_until,
)
from tests.integration._traffic import Traffic

pytestmark = pytest.mark.integration

# tx/s: the spike is 10x the base load and twice the rate one scorer process decides within
# its latency budget (1,450/s, `fraudstream bench`): its p99 leaves the budget during the spike
# and must come back after it.
BASE_RATE, SPIKE_RATE = 300, 3_000
WARMUP_S, BEFORE_S, SPIKE_S, AFTER_S = 20, 20, 30, 90  # seconds of each phase
BUDGET_MS = 50.0  # the decision latency budget (the 50 ms line of the README alerts)
WINDOW_S = 5  # the rolling p99 is taken over windows of decided_at this long
RECOVERY_BOUND_S = 60  # after the spike, p99 is back under budget for good within this
RSS_BOUND_MB = 150  # the spike may add at most this to the scorer's resident memory
AFTER_RSS_SLACK_MB = 40  # the after-phase's own window state (~1 KB an event) and noise


@dataclass(frozen=True)
class Phase:
    """Traffic at one rate for a while."""

    name: str
    rate: int
    seconds: int

    @property
    def count(self) -> int:
        return self.rate * self.seconds


PHASES = (
    Phase("warmup", BASE_RATE, WARMUP_S),  # a fresh scorer is slow for its first ~20 s
    Phase("before", BASE_RATE, BEFORE_S),
    Phase("spike", SPIKE_RATE, SPIKE_S),
    Phase("after", BASE_RATE, AFTER_S),
)


class PhasedTraffic(Traffic):
    """Open-loop traffic, phase after phase, each paced at its own rate."""

    def __init__(self, settings: Settings, topic: str, records: list[tuple[bytes, bytes]]) -> None:
        super().__init__("phased-traffic", join_timeout_s=sum(p.seconds for p in PHASES) + WAIT_S)
        self._settings = settings
        self._topic = topic
        self._records = records
        self.stats = DeliveryStats()
        self.started_at: dict[str, float] = {}  # phase -> time.time() when it started

    def send_all(self) -> None:
        producer = RecordProducer(self._settings, self._topic)  # gone with the thread
        producer.stats = self.stats
        records = iter(self._records)
        for phase in PHASES:
            self.started_at[phase.name] = time.time()
            for key, value in self.paced(itertools.islice(records, phase.count), phase.rate):
                producer.send(key, value)
        producer.flush(WAIT_S)

    def check(self) -> None:
        stats = self.stats
        assert (stats.delivered, stats.failed) == (len(self._records), 0), stats.errors


class Sampler(threading.Thread):
    """Calls ``measure`` every ``every_s`` and keeps ``(time.time(), value)``; None is skipped."""

    def __init__(self, measure: Callable[[], float | None], every_s: float) -> None:
        super().__init__(name="sampler", daemon=True)
        self._measure = measure
        self._every_s = every_s
        self._halt = threading.Event()
        self.samples: list[tuple[float, float]] = []

    def run(self) -> None:
        while not self._halt.wait(self._every_s):
            value = self._measure()
            if value is not None:
                self.samples.append((time.time(), value))

    def __enter__(self) -> Sampler:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._halt.set()
        self.join(timeout=15)

    def between(self, start: float, end: float) -> list[float]:
        return [value for at, value in self.samples if start <= at < end]

    @property
    def last(self) -> float:
        return self.samples[-1][1] if self.samples else math.nan


def _rss_mb(pid: int) -> Callable[[], float | None]:
    """The resident memory of a process and its children, in MB (None once it is gone)."""
    process = psutil.Process(pid)

    def measure() -> float | None:
        try:
            family = [process, *process.children(recursive=True)]
            return float(sum(p.memory_info().rss for p in family)) / 2**20
        except psutil.Error:
            return None

    return measure


def _reported_lag(scorer: Scorer) -> Callable[[], float | None]:
    """The scorer's own ``fraud_consumer_lag_messages``, summed over partitions."""

    def measure() -> float | None:
        try:
            return sum(scorer.metric("fraud_consumer_lag_messages").values())
        except OSError:
            return None

    return measure


def _p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)] if ordered else math.nan


def _epoch_s(decision: Decision) -> float:
    return decision.decided_at.timestamp()


def _produced_s(decision: Decision) -> float:
    return _epoch_s(decision) - decision.latency_ms / 1000


def _peak_backlog(decisions: list[Decision]) -> int:
    """The most records produced but not yet decided at any instant."""
    moves = sorted(
        [(_produced_s(d), 1) for d in decisions] + [(_epoch_s(d), -1) for d in decisions]
    )
    backlog = peak = 0
    for _at, step in moves:
        backlog += step
        peak = max(peak, backlog)
    return peak


def _windows(decisions: list[Decision], start: float, end: float) -> list[float]:
    """The p99 latency of the decisions made in each WINDOW_S window of [start, end)."""
    return [
        _p99([d.latency_ms for d in decisions if low <= _epoch_s(d) < low + WINDOW_S])
        for low in (start + k * WINDOW_S for k in range(int((end - start) // WINDOW_S)))
    ]


def _recovery_s(decisions: list[Decision], spike_end: float, end: float, target_ms: float) -> float:
    """Seconds after ``spike_end`` from which the p99 of every later decision is on target.

    Taken in WINDOW_S steps: the first ``t`` such that the p99 of all the decisions made
    in [spike_end + t, end) is within ``target_ms``, i.e. back on target and staying there
    until the end of the run. The last 10 s alone never count as "staying"; ``inf`` if
    the p99 never gets back on target before then.
    """
    for k in range(int((end - spike_end - 10) // WINDOW_S) + 1):
        after = spike_end + k * WINDOW_S
        if _p99([d.latency_ms for d in decisions if after <= _epoch_s(d) < end]) <= target_ms:
            return float(k * WINDOW_S)
    return math.inf


def _readyz(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def _scorer_pid(scorer: Scorer) -> int:
    """The scorer child's pid (one process: the scoring process), found by its topics."""
    mine: list[int] = [
        child.pid
        for child in psutil.Process().children()
        if child.environ().get("FRAUD_TOPIC_TRANSACTIONS") == scorer.topics.transactions
    ]
    assert len(mine) == 1, f"scorer processes: {mine}"
    return mine[0]


def test_a_10x_spike_drains_with_bounded_memory_and_latency_back_in_budget(
    servers: Settings, score_topics: ScoreTopics, model_dir: Path, tmp_path: Path
) -> None:
    """300 tx/s for 40 s, 3,000 tx/s for 30 s, 300 tx/s for 90 s, on one scorer process.

    The first 20 s at the base rate are the scorer's warm-up (its p99 is several hundred
    ms then) and are not measured. The spike is twice the rate one process decides within
    budget, so records wait in Kafka. Checked, exactly: 129,000 decisions, one per
    transaction, and 0 dead letters; the scorer's own ``fraud_consumer_lag_messages``
    back to 0 once the traffic ends. Memory: the scorer's RSS (psutil, every 0.5 s) from
    the spike's start until its backlog is drained stays within 150 MB of its RSS just
    before the spike, and RSS at the end of the run is at most 40 MB above that peak
    (the after-phase's 27,000 events add their own window state, ~1 KB each: nothing is
    left growing after the spike). Latency, from the decisions' own ``latency_ms``: at
    most 60 s after the spike's last record was produced, the p99 of every decision
    made from then to the end of the run is within the 50 ms budget (back under budget
    and staying there; found in 5-s steps).

    This is the one latency check the issue asks for, made on a shared machine, so its
    bound is generous: on an idle 2-core machine one process keeps up with 3,000 tx/s
    with batches of 500 (a backlog of a few hundred records) but with a p99 over budget.
    A machine so loaded that the p99 is over budget even at the base rate before the
    spike cannot show "back under budget"; there the target is the pre-spike p99 instead
    (back to where it was), and the printed ``target`` says which was used.
    """
    total = sum(phase.count for phase in PHASES)
    events = isolated_events(total, seed=27, tag=run_tag())
    topics = score_topics
    env = {"FRAUD_LAG_INTERVAL_S": "2"}
    with Scorer(topics, tmp_path / "scorer.log", model_dir=model_dir, env=env) as scorer:

        def ready() -> bool:
            scorer.assert_running()
            return _readyz(scorer.metrics_port)

        wait_until(ready, timeout_s=WAIT_S, what="the scorer ready", diagnose=scorer.log_tail)
        # Only RSS is sampled during the run (from outside, with psutil): scraping the
        # scorer's /metrics every second would itself delay decisions.
        with Sampler(_rss_mb(_scorer_pid(scorer)), every_s=0.5) as rss:
            with PhasedTraffic(servers, topics.transactions, list(keyed(events))) as traffic:
                pass
            ended_at = time.time()
            wait_for_records(scorer, servers, {topics.decisions: total})
            lag = Sampler(_reported_lag(scorer), every_s=1.0)
            with lag:
                wait_until(
                    lambda: lag.samples and lag.samples[0][0] > ended_at and lag.last == 0,
                    timeout_s=WAIT_S,
                    what="the scorer reporting no lag",
                    diagnose=lambda: f"lag {lag.samples[-5:]}\n{scorer.log_tail()}",
                )
    records = read_all(servers, topics.decisions)
    decisions = list(first_decisions(records).values())
    dead = topic_size(servers, topics.dlq)

    first = sum(phase.count for phase in PHASES[:2])
    spike = slice(first, first + PHASES[2].count)
    spike_ids = {event["tx_id"] for event in events[spike]}
    in_spike = [d for d in decisions if d.tx_id in spike_ids]
    spike_start = traffic.started_at["spike"]
    spike_end = max(_produced_s(d) for d in in_spike)  # the spike's last record was sent
    drained_at = max(_epoch_s(d) for d in in_spike)  # ... and decided
    # The p99 just before the spike: on an overloaded machine it is over budget already,
    # and "back to before the spike" is all that can be judged.
    before = [
        d.latency_ms for d in decisions if traffic.started_at["before"] <= _epoch_s(d) < spike_start
    ]
    warmup = [d.latency_ms for d in decisions if _epoch_s(d) < traffic.started_at["before"]]
    target_ms = max(BUDGET_MS, _p99(before))
    recovered_s = _recovery_s(decisions, spike_end, ended_at, target_ms)
    after_p99s = _windows(decisions, spike_end, ended_at)
    before_p99s = _windows(decisions, traffic.started_at["before"], spike_start)
    settled = [d.latency_ms for d in decisions if _epoch_s(d) >= spike_end + recovered_s]
    baseline_mb = max(rss.between(spike_start - 5, spike_start), default=math.nan)
    peak_mb = max(rss.between(spike_start, drained_at + 1), default=math.nan)
    end_mb = rss.last
    print(
        f"\ntraffic spike: base={BASE_RATE}/s spike={SPIKE_RATE}/s for {SPIKE_S}s "
        f"events={total} decisions={len(records)} dlq={dead} "
        f"peak_backlog={_peak_backlog(decisions)} "
        f"reported_lag_at_end={lag.last:.0f} drain_s={drained_at - spike_end:.1f} "
        f"p99_ms warmup={_p99(warmup):.1f} before={_p99(before):.1f} "
        f"during={_p99([d.latency_ms for d in in_spike]):.1f} "
        f"after_recovery={_p99(settled):.1f} target={target_ms:.1f} recovered_s={recovered_s} "
        f"window_p99s_before={[round(p) for p in before_p99s]} "
        f"window_p99s_after={[round(p) for p in after_p99s]} "
        f"rss_mb baseline={baseline_mb:.0f} peak={peak_mb:.0f} end={end_mb:.0f}"
    )

    assert (len(records), len(decisions), dead) == (total, total, 0)
    assert {d.tx_id for d in decisions} == {event["tx_id"] for event in events}
    assert recovered_s <= RECOVERY_BOUND_S, f"p99 per {WINDOW_S}-s window: {after_p99s}"
    assert peak_mb <= baseline_mb + RSS_BOUND_MB
    assert end_mb <= peak_mb + AFTER_RSS_SLACK_MB
