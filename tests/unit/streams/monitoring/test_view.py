from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rich.console import Console

from streams.monitoring import MetricsView, figures, render
from streams.monitoring._figures import Drift, Quantiles
from streams.monitoring._view import _psi_style
from tests.unit.streams.monitoring._registries import FakeScorer, reading, scrape_at

TITLES = [
    "fraudstream metrics",
    "Throughput",
    "Latency",
    "Decision mix",
    "Rule hits",
    "DLQ & degraded",
    "Drift",
    "Models",
    "Consumer lag",
    "Feedback",
]


def _text(view: MetricsView, width: int) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(render(view, top=2))
    return console.export_text()


def _busy_view() -> MetricsView:
    scorer = FakeScorer()
    scorer.decisions.labels("APPROVE").inc(95)
    scorer.decisions.labels("BLOCK").inc(5)
    for rule in ("velocity", "amount_spike", "new_device"):
        scorer.rule_hits.labels(rule).inc(3)
    scorer.dlq.labels("schema").inc(2)
    scorer.model_info.labels("v7", "champion").set(1)
    scorer.prediction_psi.set(0.31)
    scorer.window_rows.set(5000)
    scorer.feature_psi.labels("amount").set(0.12)
    return figures(None, scrape_at(0.0, reading("http://127.0.0.1:9100/metrics", scorer)))


@pytest.mark.parametrize("width", [80, 160])
def test_render_draws_every_panel_at_any_width(width: int) -> None:
    text = _text(_busy_view(), width)

    for title in TITLES:
        assert title in text
    assert "BLOCK" in text
    assert "v7" in text
    assert "1 more" in text  # three rules, top 2 shown
    assert "budget 50 ms" in text


def test_render_of_an_empty_view_says_what_is_missing() -> None:
    view = MetricsView(at=datetime(2026, 1, 1, tzinfo=UTC), interval_s=1.0)
    text = _text(view, 120)
    assert "no decisions yet" in text
    assert "no drift window yet" in text
    assert "no model reported" in text


def test_a_down_endpoint_is_marked_down() -> None:
    view = figures(None, scrape_at(0.0, reading("http://127.0.0.1:9101/metrics", None)))
    assert "down" in _text(view, 120)


def test_latency_over_budget_and_psi_thresholds_are_coloured() -> None:
    view = MetricsView(
        at=datetime(2026, 1, 1, tzinfo=UTC),
        interval_s=1.0,
        latency_ms=Quantiles(p50=10.0, p95=70.0, p99=200.0, observations=10),
        drift=Drift(prediction_psi=0.3),
    )
    console = Console(record=True, width=160, color_system="standard", force_terminal=True)
    console.print(render(view))
    ansi = console.export_text(styles=True)

    bold_red = "\x1b[1;31m"
    assert f"{bold_red} 70.0 ms" in ansi  # p95 over the 50 ms budget
    assert f"{bold_red}10.0 ms" not in ansi
    assert f"{bold_red}0.300" in ansi  # prediction PSI above 0.25
    assert _psi_style(0.05) == "green"
    assert _psi_style(0.1) == "yellow"
    assert _psi_style(0.25) == "bold red"
    assert _psi_style(None) == "dim"
