"""A live view of the local scorer and feedback ``/metrics``, without Prometheus or Grafana.

``fraudstream metrics tail`` and the demo use it: find the endpoints, scrape them twice,
compute the dashboard's figures, draw them::

    endpoints = discover(settings)  # or discover(settings, ["127.0.0.1:9100"])
    view = snapshot(endpoints, interval_s=1.0)
    console.print(render(view))
    orjson.dumps(view.to_json())

The JSON document (``MetricsView.to_json``) has these top-level keys; undefined figures
(no observations, zero denominators, NaN gauges) are null:

- ``at`` (ISO UTC of the second scrape), ``interval_s`` (seconds between the scrapes);
- ``endpoints``: ``[{url, service (scorer/feedback/unknown), up, error}]``;
- ``throughput``: ``decisions_per_s``, ``dlq_per_s``, ``degraded_per_s``, and per-second
  ``by_decision``, ``dlq_by_reason``, ``degraded_by_cause``, ``rule_hits_per_s``;
- ``totals`` since start, summed over scorer processes: ``decided``, ``dlq``, ``degraded``,
  ``decisions``, ``dlq_by_reason``, ``degraded_by_cause``, ``late_events``,
  ``rule_reload_failures``, ``online_model_errors``, ``shadow_errors``;
- ``shares``: ``dlq`` = dlq/(decided+dlq), ``degraded`` = degraded/decided (since start),
  ``dlq_interval``, ``degraded_interval``, ``dlq_by_reason``, ``degraded_by_cause``;
- ``latency_ms`` (over the interval) and ``latency_ms_all`` (since start): ``p50``, ``p95``,
  ``p99``, ``observations``, ``over_budget`` (share slower than 50 ms);
- ``decision_mix`` (share of each decision since start), ``rule_hits`` (total per rule);
- ``drift``: ``prediction_psi`` (max over processes), ``features`` (top 10 PSI),
  ``null_excess`` and ``out_of_range`` (top 10 above zero), ``window_rows``,
  ``score_drift_detections``, ``score_window_mean``;
- ``models``: role -> version, or role -> {url: version} while processes disagree;
- ``lag``: ``total``, ``by_partition`` (``consumer/topic/partition`` -> messages), ``change``;
- ``feedback``: ``labels``, ``applied``, ``parked``, ``online_quality``, ``publishes``,
  ``retrain_runs``, ``drift_retrain_triggers``, ``rejected``, ``labels_per_s``.
"""

from __future__ import annotations

from streams.monitoring._figures import MetricsView
from streams.monitoring._panels import figures, snapshot
from streams.monitoring._recorder import ViewRecorder
from streams.monitoring._scrape import Endpoint, Scrape, discover, parse_target, scrape
from streams.monitoring._view import render
from streams.monitoring.exceptions import MonitoringError, NoEndpointError

__all__ = [
    "Endpoint",
    "MetricsView",
    "MonitoringError",
    "NoEndpointError",
    "Scrape",
    "ViewRecorder",
    "discover",
    "figures",
    "parse_target",
    "render",
    "scrape",
    "snapshot",
]
