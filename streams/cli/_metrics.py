"""``fraudstream metrics tail``: the Grafana dashboard's panels in the terminal.

It reads the processes' own ``/metrics`` endpoints, so it works with no Prometheus or Grafana
running: on a laptop, in CI, or over SSH next to the scorer.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from streams.cli._common import console, fail, friendly_errors

if TYPE_CHECKING:
    from streams.monitoring import Endpoint
    from streams.settings import Settings

__all__ = ["metrics_app"]

metrics_app = typer.Typer(
    help="Watch the scorer's and the feedback service's metrics.", no_args_is_help=True
)

#: How often the live view looks for processes started after it (without --target).
_REDISCOVER_S = 5.0


@metrics_app.command("tail")
def tail(
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            help="HOST:PORT (or URL) of a /metrics endpoint; repeat for several. "
            "Replaces discovery.",
            show_default=False,
        ),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Scrape twice, --interval apart, show, exit.")
    ] = False,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print JSON instead of panels: one document with --once, else one per line "
            "per refresh.",
        ),
    ] = False,
    interval: Annotated[
        float, typer.Option(help="Seconds between scrapes (rates are over it).", min=0.05)
    ] = 1.0,
    duration: Annotated[
        float, typer.Option(help="Stop the live view after S seconds (0: until Ctrl-C).", min=0)
    ] = 0.0,
    top: Annotated[
        int, typer.Option(help="Rule hits shown (lag rows: twice as many).", min=1)
    ] = 10,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for each endpoint to answer.", min=0.05)
    ] = 0.5,
) -> None:
    """Watch the scorer and feedback processes live, in the dashboard's panels.

    The Grafana dashboard's panels, computed from the processes' own /metrics:
    counters are summed over the scorer processes; rates and the latency
    quantiles (p50, p95, p99 against the 50 ms budget) come from two scrapes
    --interval apart; drift gauges take the maximum over processes.

    Discovery: without --target, it probes /metrics on FRAUD_METRICS_HOST
    (loopback if it is 0.0.0.0 or ::) at the scorer ports FRAUD_METRICS_PORT
    to FRAUD_METRICS_PORT+15 (process i serves +i) and at
    FRAUD_FEEDBACK_METRICS_PORT, keeps those answering with fraudstream
    metrics, and looks again every few seconds for new processes. An endpoint
    that stops answering shows as down. Exits 1 when nothing answers.
    """
    from streams.monitoring import MonitoringError, discover, parse_target
    from streams.settings import get_settings

    targets = list(target or [])
    try:
        for each in targets:
            parse_target(each)
    except MonitoringError as exc:
        raise fail(str(exc), code=2) from None
    settings = get_settings()
    with friendly_errors():
        endpoints = discover(settings, targets, timeout_s=timeout)
        if once:
            _once(endpoints, interval, timeout, top, json_out=json_out)
        else:
            _live(settings, endpoints, targets, interval, duration, timeout, top, json_out)


def _print_json(document: object) -> None:
    import orjson

    sys.stdout.write(orjson.dumps(document).decode() + "\n")
    sys.stdout.flush()


def _once(
    endpoints: list[Endpoint], interval: float, timeout: float, top: int, *, json_out: bool
) -> None:
    from streams.monitoring import render, snapshot

    view = snapshot(endpoints, interval_s=interval, timeout_s=timeout)
    if json_out:
        _print_json(view.to_json())
    else:
        console.print(render(view, top))


def _rediscovered(settings: Settings, endpoints: list[Endpoint], timeout: float) -> list[Endpoint]:
    """``endpoints`` plus any process that started answering since (known ones are kept)."""
    from streams.monitoring import NoEndpointError, discover

    try:
        found = discover(settings, timeout_s=timeout)
    except NoEndpointError:
        return endpoints
    known = {endpoint.url for endpoint in endpoints}
    return endpoints + [endpoint for endpoint in found if endpoint.url not in known]


def _live(
    settings: Settings,
    endpoints: list[Endpoint],
    targets: list[str],
    interval: float,
    duration: float,
    timeout: float,
    top: int,
    json_out: bool,
) -> None:
    from rich.live import Live

    from streams.monitoring import figures, render, scrape

    started = last_discovery = time.monotonic()
    previous = scrape(endpoints, timeout)
    if json_out:
        live = None
    else:
        live = Live(render(figures(None, previous), top), console=console, auto_refresh=False)
        live.start()
    try:
        while not duration or time.monotonic() - started < duration:
            time.sleep(max(0.0, previous.monotonic + interval - time.monotonic()))
            if not targets and time.monotonic() - last_discovery >= _REDISCOVER_S:
                endpoints = _rediscovered(settings, endpoints, timeout)
                last_discovery = time.monotonic()
            current = scrape(endpoints, timeout)
            view = figures(previous, current)
            previous = current
            if live is None:
                _print_json(view.to_json())
            else:
                live.update(render(view, top), refresh=True)
    finally:
        if live is not None:
            live.stop()
