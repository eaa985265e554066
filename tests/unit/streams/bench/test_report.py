"""The benchmark's maths: nearest-rank percentiles, warm-up, counts, rates, the table."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rich.console import Console

from streams.bench._report import (
    Observations,
    lag_slope,
    lag_timeline,
    percentiles,
    rate_key,
    render_sweep,
    render_table,
    summarise,
    warmup_for,
)

MS = 1_000_000
START_NS = 1_800_000_000_000_000_000


def observations(
    *,
    rate: float = 100.0,
    duration_s: float = 10.0,
    warmup_s: float = 2.0,
    latency_ms: int = 5,
    skip: frozenset[int] = frozenset(),
    repeat: frozenset[int] = frozenset(),
    dlq: frozenset[int] = frozenset(),
    causes: dict[int, str] | None = None,
) -> Observations:
    """Transactions sent exactly on schedule, each decided ``latency_ms`` later."""
    events = round(rate * duration_s)
    sent_ns = START_NS + np.arange(1, events + 1, dtype=np.int64) * int(1e9 / rate)
    decided = [i for i in range(events) if i not in skip and i not in dlq]
    index = decided + sorted(repeat)
    stamp_ms = [int(sent_ns[i] // MS) + latency_ms for i in index]
    received = [int(sent_ns[i]) + latency_ms * MS + 2_500_000 for i in index]
    cause = [(causes or {}).get(i, "") for i in index]
    return Observations(
        rate=rate,
        duration_s=duration_s,
        warmup_s=warmup_s,
        start_ns=START_NS,
        sent_ns=sent_ns,
        decision_index=np.asarray(index, dtype=np.int64),
        decision_ms=np.asarray(stamp_ms, dtype=np.int64),
        received_ns=np.asarray(received, dtype=np.int64),
        decision_cause=np.asarray(cause, dtype=np.str_),
        dlq_index=np.asarray(sorted(dlq), dtype=np.int64),
        dlq_received_ns=np.asarray([int(sent_ns[i]) + 3 * MS for i in sorted(dlq)], dtype=np.int64),
        delivered=events,
    )


def test_percentiles_are_nearest_rank_values_that_occurred():
    summary = percentiles(np.arange(1, 101, dtype=np.int64))
    assert summary == {"p50": 50.0, "p95": 95.0, "p99": 99.0, "p999": 100.0, "max": 100.0}


def test_tail_percentiles_of_a_skewed_sample_are_not_interpolated():
    values = np.array([1.0] * 990 + [500.0] * 10)
    summary = percentiles(values)
    assert summary["p99"] == 1.0  # the 990th of 1000 values
    assert summary["p999"] == 500.0
    assert summary["max"] == 500.0


def test_percentiles_of_nothing_are_none_not_zero():
    assert percentiles(np.array([], dtype=np.int64)) == {
        "p50": None, "p95": None, "p99": None, "p999": None, "max": None,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("duration", "requested", "expected"),
    [(20.0, None, 2.0), (100.0, None, 10.0), (5.0, None, 2.0), (3.0, None, 1.5), (20.0, 7.0, 7.0),
     (20.0, 50.0, 20.0), (20.0, -1.0, 0.0)],
)  # fmt: skip
def test_warmup_is_ten_percent_at_least_two_seconds_at_most_half(duration, requested, expected):
    assert warmup_for(duration, requested) == pytest.approx(expected)


def test_latency_is_decision_stamp_minus_send_stamp_in_ms():
    result = summarise(observations(latency_ms=5))
    assert result["latency_ms"] == {"p50": 5.0, "p95": 5.0, "p99": 5.0, "p999": 5.0, "max": 5.0}
    assert result["e2e_us"]["p50"] == pytest.approx(7_500.0)


def test_the_send_stamp_is_truncated_to_the_ms_like_a_kafka_create_time():
    obs = observations(rate=1.0, duration_s=1.0, warmup_s=0.0)
    obs.sent_ns[0] = 1_000 * MS + 999_999  # CreateTime 1000 ms
    obs.decision_ms[0] = 1_001
    assert summarise(obs)["latency_ms"]["max"] == 1.0


def test_warm_up_transactions_are_left_out_of_the_latency_figures():
    obs = observations(rate=100.0, duration_s=10.0, warmup_s=2.0, latency_ms=5)
    obs.decision_ms[:200] += 1_000  # the first 2 s are slow: start-up
    result = summarise(obs)
    assert result["latency_ms"]["max"] == 5.0
    assert result["measured_events"] == 800
    assert result["measured_decisions"] == 800
    assert result["events"] == result["decisions"] == 1000


def test_missing_repeated_and_dead_lettered_transactions_are_counted_once():
    result = summarise(
        observations(skip=frozenset({10, 500}), repeat=frozenset({3, 700}), dlq=frozenset({600}))
    )
    assert result["events"] == 1000
    assert result["decisions"] == 997
    assert result["duplicates"] == 2
    assert result["dlq"] == 1
    assert result["missing"] == 2


def test_throughput_of_a_scorer_that_keeps_up_is_the_offered_rate():
    result = summarise(observations(rate=100.0))
    assert result["throughput_eps"] == pytest.approx(100.0, rel=0.01)
    assert result["generator"]["send_rate_eps"] == pytest.approx(100.0, rel=0.01)


def test_throughput_of_a_scorer_that_falls_behind_is_its_capacity():
    obs = observations(rate=100.0, duration_s=10.0, warmup_s=0.0)
    # decisions leave at 50/s however fast transactions arrive
    obs.decision_ms[:] = START_NS // MS + np.arange(1000) * 20
    assert summarise(obs)["throughput_eps"] == pytest.approx(50.0, rel=0.01)


def test_degraded_decisions_are_counted_by_cause_once_per_transaction():
    causes = {1: "no_model", 2: "no_model", 3: "redis_timeout"}
    result = summarise(observations(repeat=frozenset({1}), causes=causes))
    assert result["degraded"] == 3
    assert result["degraded_causes"] == {"no_model": 2, "redis_timeout": 1}


def test_a_generator_behind_its_schedule_is_reported_and_counted_from_the_schedule():
    obs = observations(latency_ms=5)
    obs.sent_ns[400] += 50 * MS  # sent 50 ms late, decided 5 ms after it was sent
    obs.decision_ms[400] += 50
    result = summarise(obs)
    behind = result["generator"]["behind_schedule_ms"]
    assert behind["max"] == pytest.approx(50.0)
    assert behind["p50"] == pytest.approx(0.0)
    assert result["latency_ms"]["max"] == 5.0
    assert result["latency_from_schedule_ms"]["max"] == pytest.approx(55.0, abs=1.0)
    assert result["latency_from_schedule_ms"]["p50"] == pytest.approx(5.0, abs=1.0)


def test_a_run_without_any_decision_still_summarises():
    obs = observations(skip=frozenset(range(1000)))
    result = summarise(obs)
    assert result["decisions"] == 0
    assert result["missing"] == 1000
    assert result["throughput_eps"] == 0.0
    assert result["latency_ms"]["p50"] is None
    assert not math.isnan(result["generator"]["send_rate_eps"])


def test_the_table_shows_the_headline_figures():
    result = summarise(observations(latency_ms=7)) | {
        "machine": {"cores": 2, "cpu": "Test CPU"},
        "verdict": {"sustainable": False, "reasons": ["p99 70 > 50 ms"]},
        "system": {
            "name": "quix",
            "processes": 1,
            "rss_start_mib": 200.0,
            "rss_mib": 210.5,
            "rss_peak_mib": 220.0,
            "cpu_percent": 40.0,
            "cpu_us_per_decision": 310.0,
        },
        "busy_cores": {"machine": 1.5, "other": 0.25},
    }
    console = Console(record=True, width=120)
    console.print(render_table(result))
    text = console.export_text()
    assert "7 / 7" in text  # p50 / p95
    assert "1,000 / 1,000 / 0" in text
    assert "200.0 / 210.5 / 220.0" in text
    assert "310.0" in text
    assert "Test CPU" in text
    assert "quix bench @ 100 tx/s" in text
    assert "no: p99 70 > 50 ms" in text


def test_the_timeline_shows_a_stall_in_the_second_it_happened_warm_up_included():
    obs = observations(rate=100.0, duration_s=10.0, warmup_s=2.0, latency_ms=5)
    obs.decision_ms[0] += 500  # start-up, in the warm-up
    obs.decision_ms[650:660] += 200  # a stall in second 6
    rows = summarise(obs)["timeline"]
    assert [row["s"] for row in rows] == list(range(10))
    assert all(row["decisions"] == 100 for row in rows)
    assert rows[0]["max"] == 505.0
    assert rows[6]["max"] == 205.0
    assert rows[6]["p50"] == 5.0
    assert all(row["max"] == 5.0 for i, row in enumerate(rows) if i not in (0, 6))


def test_a_second_without_decisions_has_no_latency():
    rows = summarise(observations(skip=frozenset(range(300, 400))))["timeline"]
    assert rows[3] == {"s": 3, "decisions": 0, "p50": None, "p99": None, "max": None}


def test_the_backlog_of_a_system_that_keeps_up_is_what_is_in_flight():
    result = summarise(observations(rate=100.0, duration_s=10.0, latency_ms=5))
    rows = result["lag_timeline"]
    assert [row["s"] for row in rows] == list(range(10))
    assert all(row["sent"] == 100 * (row["s"] + 1) for row in rows)
    # the decision of the last transaction of each second is read 7.5 ms into the next
    assert all(row["backlog"] == 1 for row in rows)
    assert result["lag_slope_eps"] == 0.0


def test_the_backlog_of_a_system_that_falls_behind_grows_at_the_shortfall():
    obs = observations(rate=100.0, duration_s=10.0, warmup_s=2.0)
    # read back at 60/s: 40 more transactions wait every second
    obs.received_ns[:] = START_NS + np.arange(1, 1001, dtype=np.int64) * (1_000_000_000 // 60)
    result = summarise(obs)
    assert result["lag_slope_eps"] == pytest.approx(40.0, abs=1.0)
    backlog = [row["backlog"] for row in result["lag_timeline"]]
    assert backlog == sorted(backlog)
    assert backlog[-1] == pytest.approx(400, abs=2)


def test_dead_letters_are_accounted_like_decisions():
    result = summarise(observations(dlq=frozenset(range(100, 200))))
    assert all(row["backlog"] <= 1 for row in result["lag_timeline"])


def test_lag_timeline_counts_at_the_end_of_each_second():
    sent = np.asarray([0, 500, 999_999_999, 1_000_000_000, 1_500_000_000], dtype=np.int64)
    accounted = np.asarray([10, 1_700_000_000], dtype=np.int64)
    assert lag_timeline(sent, accounted, start_ns=0, seconds=2) == [
        {"s": 0, "sent": 4, "accounted": 1, "backlog": 3},
        {"s": 1, "sent": 5, "accounted": 2, "backlog": 3},
    ]


def test_lag_slope_fits_only_the_measured_seconds():
    rows = [{"s": s, "backlog": 1000 if s < 2 else 10 + 5 * s} for s in range(10)]
    assert lag_slope(rows, from_s=2.0) == pytest.approx(5.0)
    assert lag_slope(rows, from_s=1.5) == pytest.approx(5.0)  # second 1 is partly warm-up
    assert lag_slope(rows, from_s=0.0) < 0


def test_lag_slope_needs_two_seconds():
    rows = [{"s": s, "backlog": s} for s in range(3)]
    assert lag_slope(rows, from_s=2.0) is None
    assert lag_slope([], from_s=0.0) is None


def test_rate_keys_are_plain_numbers():
    assert rate_key(2000.0) == "2000"
    assert rate_key(1_000_000.0) == "1000000"
    assert rate_key(2500.5) == "2500.5"


def test_the_sweep_table_shows_each_systems_limit_and_latency_there():
    document = {
        "fraudstream": {"max_sustainable_eps": 2000.0, "first_unsustainable_eps": 4000.0,
                        "latency_ms_at": {"2000": {"p50": 12.0, "p99": 41.0, "p999": 48.0}},
                        "rss_mb": 320.5, "runs": 5, "stopped_because": "boundary found",
                        "bytes_per_user": 812.0},
        "quix": {"max_sustainable_eps": None, "first_unsustainable_eps": 1000.0,
                 "latency_ms_at": {}, "rss_mb": None, "runs": 3,
                 "stopped_because": "no sustainable rate found"},
    }  # fmt: skip
    console = Console(record=True, width=160)
    console.print(render_sweep(document))
    text = console.export_text()
    assert "12 / 41 / 48" in text
    assert "320.5" in text
    assert "no sustainable rate found" in text
    assert "812 bytes per active user" in text
    assert "passthrough" not in text
