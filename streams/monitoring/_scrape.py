"""Find the local ``/metrics`` endpoints and read them, without Prometheus.

The tail must work on a laptop where only ``fraudstream score`` and ``fraudstream feedback``
run, so it finds them the way they bind: scorer process *i* on ``metrics_port + i``, the
feedback service on ``feedback_metrics_port``. Probes are concurrent with a short timeout,
so looking at seventeen ports costs about one timeout, and a process that stops answering
between two refreshes is shown as down instead of ending the tail.

An endpoint's service is read from what it exposes, not only from its port, because ports
can be overridden: the feedback service also imports the scorer's metric module (so it
exposes an empty latency histogram), hence feedback signatures are checked first.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.client import HTTPException
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

from streams.monitoring.exceptions import MonitoringError, NoEndpointError

if TYPE_CHECKING:
    from streams.settings import Settings

__all__ = [
    "SCORER_PROCESSES",
    "Endpoint",
    "Reading",
    "Sample",
    "Samples",
    "Scrape",
    "candidate_urls",
    "classify",
    "discover",
    "parse",
    "parse_target",
    "scrape",
]

#: Scorer processes probed during discovery: ports metrics_port .. metrics_port + 15.
SCORER_PROCESSES = 16
#: Per-request timeout: local processes answer in milliseconds; a closed port fails at once.
_TIMEOUT_S = 0.5

_FEEDBACK_SIGNS = frozenset(
    {
        "fraud_feedback_labels_total",
        "fraud_labels_total",
        "fraud_feedback_parked_labels",
        "fraud_online_model_quality",
        "fraud_online_model_publishes_total",
        "fraud_retrain_runs_total",
    }
)
_SCORER_SIGNS = frozenset(
    {
        "fraud_transactions_total",
        "fraud_decision_latency_seconds_count",
        "fraud_decision_latency_seconds_bucket",
        "fraud_rule_hits_total",
        "fraud_model_info",
    }
)
# No proxy: the endpoints are local, and an http_proxy in the environment must not see them.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Sample(NamedTuple):
    """One sample of an exposition: its labels and value (NaN kept as NaN)."""

    labels: Mapping[str, str]
    value: float


#: Samples of one page by sample name (``fraud_transactions_total``, ``..._bucket``, ...).
Samples = Mapping[str, Sequence[Sample]]


@dataclass(frozen=True)
class Endpoint:
    """A ``/metrics`` URL and the service behind it: ``scorer``, ``feedback`` or ``unknown``."""

    url: str
    service: str = "unknown"


@dataclass(frozen=True)
class Reading:
    """What one endpoint answered at one scrape; ``samples`` is None when it did not."""

    endpoint: Endpoint
    samples: Samples | None
    error: str | None = None

    @property
    def up(self) -> bool:
        """Whether the endpoint answered with a readable exposition."""
        return self.samples is not None


@dataclass(frozen=True)
class Scrape:
    """One round over all endpoints: wall-clock time, monotonic time and every reading."""

    at: datetime
    monotonic: float
    readings: tuple[Reading, ...] = field(default_factory=tuple)


def parse(text: str) -> dict[str, list[Sample]]:
    """Samples of a Prometheus text exposition by sample name (raises ValueError if unreadable)."""
    samples: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(
                Sample(dict(sample.labels), float(sample.value))
            )
    return samples


def _fetch(url: str, timeout_s: float) -> Reading:
    endpoint = Endpoint(url)
    try:
        # Only http(s) URLs built by candidate_urls/parse_target reach here.
        with _OPENER.open(url, timeout=timeout_s) as response:
            text = response.read().decode("utf-8")
        return Reading(endpoint, parse(text))
    except (OSError, ValueError, HTTPException) as exc:
        return Reading(endpoint, None, f"{type(exc).__name__}: {exc}")


def _read_all(urls: Sequence[str], timeout_s: float) -> list[Reading]:
    if not urls:
        return []
    with ThreadPoolExecutor(max_workers=min(len(urls), 32)) as pool:
        return list(pool.map(lambda url: _fetch(url, timeout_s), urls))


def scrape(endpoints: Iterable[Endpoint], timeout_s: float = _TIMEOUT_S) -> Scrape:
    """Read every endpoint concurrently; one that does not answer is a reading that is down."""
    endpoints = list(endpoints)
    readings = _read_all([endpoint.url for endpoint in endpoints], timeout_s)
    return Scrape(
        at=datetime.now(UTC),
        monotonic=time.monotonic(),
        readings=tuple(
            Reading(endpoint, reading.samples, reading.error)
            for endpoint, reading in zip(endpoints, readings, strict=True)
        ),
    )


def classify(samples: Samples, port: int | None = None, settings: Settings | None = None) -> str:
    """``feedback``, ``scorer`` or ``unknown``: from the metrics exposed, else from the port."""
    names = samples.keys()
    if any(name in _FEEDBACK_SIGNS for name in names):
        return "feedback"
    if any(name in _SCORER_SIGNS for name in names):
        return "scorer"
    if port is not None and settings is not None:
        if port == settings.feedback_metrics_port:
            return "feedback"
        if settings.metrics_port <= port < settings.metrics_port + SCORER_PROCESSES:
            return "scorer"
    return "unknown"


def _local_host(host: str) -> str:
    """Where to reach a service bound to ``host``: loopback for the wildcard addresses."""
    if host in {"", "0.0.0.0", "::", "[::]"}:  # noqa: S104 - compared, not bound
        return "127.0.0.1"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def candidate_urls(settings: Settings) -> list[str]:
    """The URLs discovery probes: every scorer process port, then the feedback port."""
    host = _local_host(settings.metrics_host)
    ports = [settings.metrics_port + i for i in range(SCORER_PROCESSES)]
    ports.append(settings.feedback_metrics_port)
    return [f"http://{host}:{port}/metrics" for port in dict.fromkeys(ports)]


def parse_target(target: str) -> str:
    """The ``/metrics`` URL of a ``--target``: ``HOST:PORT``, ``[::1]:PORT`` or a full URL."""
    text = target.strip()
    if "://" not in text:
        text = f"http://{text}"
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in {"http", "https"} or not parts.hostname or port is None:
        raise MonitoringError(
            f"--target {target!r} is not HOST:PORT (for example 127.0.0.1:9100) "
            "or an http:// URL with a port"
        )
    path = parts.path if parts.path not in {"", "/"} else "/metrics"
    return f"{parts.scheme}://{parts.netloc}{path}"


def discover(
    settings: Settings | None = None,
    targets: Sequence[str] = (),
    *,
    timeout_s: float = _TIMEOUT_S,
) -> list[Endpoint]:
    """The endpoints to watch, each with its service.

    Without ``targets``: the scorer ports (``metrics_port`` + 0..15) and the feedback port
    on ``metrics_host`` (loopback when it is a wildcard), keeping those that answer with
    fraudstream metrics. With ``targets`` (``HOST:PORT`` or URLs): exactly those, including
    the ones down right now, as long as at least one answers. Raises NoEndpointError when
    nothing answers, MonitoringError for a malformed target.
    """
    if settings is None:
        from streams.settings import get_settings

        settings = get_settings()
    urls = list(dict.fromkeys(parse_target(target) for target in targets))
    explicit = bool(urls)
    if not explicit:
        urls = candidate_urls(settings)
    readings = _read_all(urls, timeout_s)
    found: list[Endpoint] = []
    for url, reading in zip(urls, readings, strict=True):
        ours = reading.samples is not None and any(
            name.startswith("fraud_") for name in reading.samples
        )
        if not explicit and not ours:
            continue
        port = urlsplit(url).port
        service = classify(reading.samples or {}, port, settings)
        found.append(Endpoint(url, service))
    if not any(reading.up for reading in readings) or not found:
        where = ", ".join(urls) if explicit else _describe_ports(settings)
        raise NoEndpointError(
            f"no fraudstream metrics endpoint answered on {where}; start `fraudstream score` "
            "/ `fraudstream feedback` or pass --target"
        )
    return found


def _describe_ports(settings: Settings) -> str:
    host = _local_host(settings.metrics_host)
    last = settings.metrics_port + SCORER_PROCESSES - 1
    return (
        f"{host} ports {settings.metrics_port}-{last} (scorer) "
        f"and {settings.feedback_metrics_port} (feedback)"
    )
