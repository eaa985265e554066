from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry

from streams.monitoring import Endpoint, MonitoringError, NoEndpointError, discover, scrape
from streams.monitoring._scrape import (
    SCORER_PROCESSES,
    candidate_urls,
    classify,
    parse,
    parse_target,
)
from streams.settings import Settings
from tests.unit.streams.monitoring._registries import FakeFeedback, FakeScorer, Servers


def test_parse_reads_counters_histograms_and_nan_gauges_from_a_real_exposition() -> None:
    scorer = FakeScorer()
    scorer.decisions.labels("APPROVE").inc(7)
    scorer.decisions.labels("BLOCK").inc(2)
    scorer.latency.observe(0.004)
    feedback = FakeFeedback()
    feedback.quality.labels("auc").set(math.nan)

    samples = parse(scorer.text())
    quality = parse(feedback.text())["fraud_online_model_quality"]

    by_decision = {s.labels["decision"]: s.value for s in samples["fraud_transactions_total"]}
    assert by_decision == {"APPROVE": 7.0, "BLOCK": 2.0}
    buckets = {s.labels["le"]: s.value for s in samples["fraud_decision_latency_seconds_bucket"]}
    assert buckets["0.003"] == 0.0
    assert buckets["0.005"] == 1.0
    assert buckets["+Inf"] == 1.0
    assert math.isnan(quality[0].value)


def test_parse_refuses_a_page_that_is_not_an_exposition() -> None:
    with pytest.raises(ValueError, match="invalid"):
        parse("<html><body>not metrics</body></html>")


def test_classify_by_metrics_checks_feedback_first_then_falls_back_to_the_port() -> None:
    settings = Settings(metrics_port=9100, feedback_metrics_port=9200)
    # The feedback service exposes the scorer's (empty) latency histogram too.
    assert classify(parse(FakeFeedback().text()), 9105, settings) == "feedback"
    assert classify(parse(FakeScorer().text()), 9200, settings) == "scorer"
    assert classify({}, 9200, settings) == "feedback"
    assert classify({}, 9100 + SCORER_PROCESSES - 1, settings) == "scorer"
    assert classify({}, 9100 + SCORER_PROCESSES, settings) == "unknown"
    assert classify({}) == "unknown"


@pytest.mark.parametrize(
    ("target", "url"),
    [
        ("127.0.0.1:9100", "http://127.0.0.1:9100/metrics"),
        ("localhost:9200", "http://localhost:9200/metrics"),
        ("[::1]:9101", "http://[::1]:9101/metrics"),
        ("http://10.0.0.5:9100/", "http://10.0.0.5:9100/metrics"),
        ("http://10.0.0.5:9100/custom", "http://10.0.0.5:9100/custom"),
    ],
)
def test_parse_target_accepts_host_port_and_urls(target: str, url: str) -> None:
    assert parse_target(target) == url


@pytest.mark.parametrize("target", ["nope", "127.0.0.1", "host:port", "ftp://h:21", ":9100"])
def test_parse_target_refuses_what_has_no_host_and_port(target: str) -> None:
    with pytest.raises(MonitoringError, match="HOST:PORT"):
        parse_target(target)


def test_candidate_urls_probe_every_scorer_process_and_the_feedback_port_on_loopback() -> None:
    settings = Settings(metrics_host="0.0.0.0", metrics_port=9300, feedback_metrics_port=9400)  # noqa: S104
    urls = candidate_urls(settings)
    assert urls[0] == "http://127.0.0.1:9300/metrics"
    assert urls[SCORER_PROCESSES - 1] == f"http://127.0.0.1:{9300 + SCORER_PROCESSES - 1}/metrics"
    assert urls[-1] == "http://127.0.0.1:9400/metrics"
    assert len(urls) == SCORER_PROCESSES + 1
    overlapping = Settings(metrics_host="::", metrics_port=9300, feedback_metrics_port=9301)
    assert len(candidate_urls(overlapping)) == SCORER_PROCESSES
    assert candidate_urls(overlapping)[0].startswith("http://127.0.0.1:")


def test_discover_finds_scorer_and_feedback_servers_and_a_stopped_one_shows_as_down(
    serve: Servers,
) -> None:
    scorer, feedback = FakeScorer(), FakeFeedback()
    scorer.decisions.labels("APPROVE").inc(3)
    scorer_port, feedback_port = serve(scorer.registry), serve(feedback.registry)
    not_ours = serve(CollectorRegistry())  # answers, but with no fraud_ metric
    settings = Settings(
        metrics_host="127.0.0.1", metrics_port=scorer_port, feedback_metrics_port=feedback_port
    )

    found = discover(settings, timeout_s=0.5)

    assert Endpoint(f"http://127.0.0.1:{scorer_port}/metrics", "scorer") in found
    assert Endpoint(f"http://127.0.0.1:{feedback_port}/metrics", "feedback") in found
    assert all(f":{not_ours}/" not in endpoint.url for endpoint in found)
    assert all(reading.up for reading in scrape(found, timeout_s=0.5).readings)

    serve.stop(scorer_port)
    after = {r.endpoint.url: r for r in scrape(found, timeout_s=0.5).readings}

    assert after[f"http://127.0.0.1:{scorer_port}/metrics"].up is False
    assert after[f"http://127.0.0.1:{scorer_port}/metrics"].error
    assert after[f"http://127.0.0.1:{feedback_port}/metrics"].up is True


def test_discover_with_targets_keeps_a_target_that_is_down_while_another_answers(
    serve: Servers, closed_port: int
) -> None:
    port = serve(FakeScorer().registry)
    settings = Settings(metrics_port=9100, feedback_metrics_port=9200)

    found = discover(settings, [f"127.0.0.1:{port}", f"127.0.0.1:{closed_port}"], timeout_s=0.5)

    assert [endpoint.service for endpoint in found] == ["scorer", "unknown"]
    assert found[1].url == f"http://127.0.0.1:{closed_port}/metrics"


def test_discover_raises_a_clear_error_when_nothing_answers(closed_port: int) -> None:
    settings = Settings(metrics_port=closed_port, feedback_metrics_port=closed_port)
    with pytest.raises(NoEndpointError, match=r"start `fraudstream score`.*--target"):
        discover(settings, timeout_s=0.2)
    with pytest.raises(NoEndpointError, match=f"127.0.0.1:{closed_port}"):
        discover(settings, [f"127.0.0.1:{closed_port}"], timeout_s=0.2)
