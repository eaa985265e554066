"""The panels of the Grafana dashboard, drawn with rich from a MetricsView.

Rendering is a pure function of the figures, so the live tail, ``--once`` and the demo's
closing summary all draw the same thing, and tests can render a view without any server.
Thresholds colour what issue 7 alerts on: p95 over the 50 ms budget, PSI (green below 0.1,
yellow below 0.25, red above), null excess over 5 %, DLQ and degraded shares over 1 %.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import JustifyMethod

from streams.monitoring._figures import LATENCY_BUDGET_MS, MetricsView

__all__ = ["render"]

_DECISION_STYLE = {"APPROVE": "green", "REVIEW": "yellow", "BLOCK": "bold red"}
_SHARE_ALERT = 0.01
_NULL_ALERT = 0.05
#: The latency bars span 0 to twice the budget; the budget sits in the middle.
_BAR_CELLS = 20
_BAR_SCALE_MS = 2 * LATENCY_BUDGET_MS
#: Below this width the panels are stacked instead of side by side.
_TWO_COLUMNS_MIN_WIDTH = 120


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _pct(share: float | None) -> str:
    return "–" if share is None else f"{share * 100:.2f} %"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} ms"


def _psi_style(psi: float | None) -> str:
    if psi is None:
        return "dim"
    return "green" if psi < 0.1 else "yellow" if psi < 0.25 else "bold red"


def _alert(share: float | None, limit: float = _SHARE_ALERT) -> str:
    if share is None:
        return "dim"
    return "bold red" if share > limit else "green"


def _grid(*columns: str, values: JustifyMethod = "right") -> Table:
    """A borderless table; a header only when a column is named."""
    table = Table(box=None, pad_edge=False, show_header=any(columns), header_style="dim")
    for index, name in enumerate(columns):
        table.add_column(name, justify="left" if index == 0 else values, no_wrap=index > 0)
    return table


def _panel(body: RenderableType, title: str) -> Panel:
    return Panel(body, title=f"[bold]{title}[/]", title_align="left", box=box.ROUNDED)


def _header(view: MetricsView) -> Panel:
    line = Text()
    up = sum(1 for e in view.endpoints if e.up)
    line.append(f"{view.at:%Y-%m-%d %H:%M:%S} UTC", style="bold")
    line.append(f"   interval {view.interval_s:.2f} s   endpoints {up}/{len(view.endpoints)} up\n")
    for endpoint in view.endpoints:
        mark, style = ("●", "green") if endpoint.up else ("○", "red")
        line.append(f"{mark} ", style=style)
        line.append(f"{endpoint.service:<8} {endpoint.url}")
        line.append("  up" if endpoint.up else "  down", style=style)
        line.append("\n")
    line.rstrip()
    return _panel(line, "fraudstream metrics")


def _throughput(view: MetricsView) -> Panel:
    rate, totals = view.throughput, view.totals
    table = _grid("", "per s", "total")
    table.add_row("decisions", _num(rate.decisions_per_s, 1), _num(totals.decided))
    table.add_row("dead-lettered", _num(rate.dlq_per_s, 1), _num(totals.dlq))
    table.add_row("degraded", _num(rate.degraded_per_s, 1), _num(totals.degraded))
    table.add_row("late events", "", _num(totals.late_events))
    table.add_row("rule reload failures", "", _num(totals.rule_reload_failures))
    table.add_row("online model errors", "", _num(totals.online_model_errors))
    for cause, count in totals.shadow_errors.items():
        table.add_row(f"shadow errors: {cause}", "", _num(count))
    return _panel(table, "Throughput")


def _bar(ms: float | None) -> Text:
    """A bar from 0 to twice the budget with the budget marked, red past it."""
    text = Text()
    budget_cell = round(_BAR_CELLS * LATENCY_BUDGET_MS / _BAR_SCALE_MS)
    filled = 0 if ms is None else min(_BAR_CELLS, round(ms / _BAR_SCALE_MS * _BAR_CELLS))
    over = ms is not None and ms > LATENCY_BUDGET_MS
    for cell in range(_BAR_CELLS + 1):
        if cell == budget_cell:
            text.append("┃", style="bold yellow")
        if cell < _BAR_CELLS:
            fill = cell < filled
            text.append("█" if fill else "·", style=("red" if over else "green") if fill else "dim")
    if ms is not None and ms > _BAR_SCALE_MS:
        text.append("▶", style="red")
    return text


def _latency(view: MetricsView) -> Panel:
    last, all_time = view.latency_ms, view.latency_ms_all
    table = _grid("", f"last {view.interval_s:.0f} s", "since start", "")
    table.columns[3].justify = "left"
    for name in ("p50", "p95", "p99"):
        recent: float | None = getattr(last, name)
        overall: float | None = getattr(all_time, name)
        style = "bold red" if recent is not None and recent > LATENCY_BUDGET_MS else ""
        table.add_row(name, Text(_ms(recent), style=style), _ms(overall), _bar(recent))
    table.add_row("decisions", _num(last.observations), _num(all_time.observations), "")
    table.add_row(
        f"over {LATENCY_BUDGET_MS:.0f} ms", _pct(last.over_budget), _pct(all_time.over_budget), ""
    )
    caption = Text(f"budget {LATENCY_BUDGET_MS:.0f} ms ┃ (bars: 0-{_BAR_SCALE_MS:.0f} ms)")
    caption.stylize("dim")
    return _panel(Group(table, caption), "Latency")


def _decision_mix(view: MetricsView) -> Panel:
    if not view.totals.decisions:
        return _panel(Text("no decisions yet", style="dim"), "Decision mix")
    table = _grid("", "total", "share", "per s")
    for decision, count in view.totals.decisions.items():
        style = _DECISION_STYLE.get(decision, "")
        table.add_row(
            Text(decision, style=style),
            _num(count),
            _pct(view.decision_mix.get(decision)),
            _num(view.throughput.by_decision.get(decision), 1),
        )
    return _panel(table, "Decision mix")


def _rule_hits(view: MetricsView, top: int) -> Panel:
    if not view.rule_hits:
        return _panel(Text("no rule hits yet", style="dim"), "Rule hits")
    table = _grid("rule", "total", "per s")
    for rule, count in list(view.rule_hits.items())[:top]:
        table.add_row(rule, _num(count), _num(view.throughput.rule_hits_per_s.get(rule), 1))
    hidden = len(view.rule_hits) - top
    if hidden > 0:
        table.add_row(Text(f"… {hidden} more", style="dim"), "", "")
    return _panel(table, f"Rule hits (top {top})")


def _dlq_degraded(view: MetricsView) -> Panel:
    shares, totals, rate = view.shares, view.totals, view.throughput
    table = _grid("", "total", "per s", "share")
    _share_rows(
        table, "dead-lettered", totals.dlq, rate.dlq_per_s, shares.dlq,
        totals.dlq_by_reason, rate.dlq_by_reason, shares.dlq_by_reason,
    )  # fmt: skip
    _share_rows(
        table, "degraded", totals.degraded, rate.degraded_per_s, shares.degraded,
        totals.degraded_by_cause, rate.degraded_by_cause, shares.degraded_by_cause,
    )  # fmt: skip
    note = Text("shares: dlq/(decided+dlq), degraded/decided; alert above 1 %", style="dim")
    return _panel(Group(table, note), "DLQ & degraded")


def _share_rows(
    table: Table,
    name: str,
    total: int,
    per_s: float,
    share: float | None,
    totals: Mapping[str, int],
    rates: Mapping[str, float],
    shares: Mapping[str, float | None],
) -> None:
    """A total row (its share coloured against the alert) and one row per reason/cause."""
    table.add_row(
        Text(name, style="bold"),
        _num(total),
        _num(per_s, 1),
        Text(_pct(share), style=_alert(share)),
    )
    for label, count in totals.items():
        table.add_row(f"  {label}", _num(count), _num(rates.get(label), 1), _pct(shares.get(label)))


def _drift(view: MetricsView) -> Panel:
    drift = view.drift
    table = _grid("", "")
    psi = drift.prediction_psi
    table.add_row("prediction PSI", Text(_num(psi, 3), style=_psi_style(psi)))
    table.add_row("window rows", _num(drift.window_rows))
    table.add_row("ADWIN detections", _num(drift.score_drift_detections))
    table.add_row("ADWIN mean score", _num(drift.score_window_mean, 3))
    parts: list[RenderableType] = [table]
    if drift.features:
        features = _grid("feature", "PSI")
        for name, value in drift.features.items():
            features.add_row(name, Text(f"{value:.3f}", style=_psi_style(value)))
        parts.append(features)
    for title, values, limit in (
        ("null excess", drift.null_excess, _NULL_ALERT),
        ("out of range", drift.out_of_range, _NULL_ALERT),
    ):
        if values:
            extra = _grid(title, "ratio")
            for name, value in values.items():
                extra.add_row(name, Text(_pct(value), style=_alert(value, limit)))
            parts.append(extra)
    if psi is None and not drift.features:
        parts.append(Text("no drift window yet (fewer rows than FRAUD_DRIFT_MIN_ROWS)", "dim"))
    return _panel(Group(*parts), "Drift")


def _models(view: MetricsView) -> Panel:
    if not view.models:
        return _panel(Text("no model reported", style="dim"), "Models")
    table = _grid("", "")
    for role, version in view.models.items():
        if isinstance(version, str):
            table.add_row(role, Text(version, style="cyan"))
            continue
        for url, each in version.items():
            table.add_row(f"{role} ({url})", Text(each, style="yellow"))
    return _panel(table, "Models")


def _lag(view: MetricsView, top: int) -> Panel:
    lag = view.lag
    table = _grid("consumer/topic/partition", "messages")
    change = "" if lag.change is None else f" ({lag.change:+,})"
    style = "red" if lag.change is not None and lag.change > 0 else ""
    table.add_row(Text("total", style="bold"), Text(f"{lag.total:,}{change}", style=style))
    for key, value in list(lag.by_partition.items())[: 2 * top]:
        table.add_row(key, _num(value))
    return _panel(table, "Consumer lag")


def _kv(values: Mapping[str, float | int | None], digits: int = 0) -> str:
    return "  ".join(f"{k} {_num(v, digits)}" for k, v in values.items()) or "–"


def _feedback(view: MetricsView) -> Panel:
    fb = view.feedback
    table = _grid("", "", values="left")
    table.add_row("labels", f"{_kv(fb.labels)}   ({_num(fb.labels_per_s, 1)}/s)")
    table.add_row("applied", _kv(fb.applied))
    table.add_row("parked", _num(fb.parked))
    table.add_row("online quality", _kv(fb.online_quality, 3))
    table.add_row("online publishes", _kv(fb.publishes))
    table.add_row("retrain runs", _kv(fb.retrain_runs))
    table.add_row("drift retrains", _num(fb.drift_retrain_triggers))
    if fb.rejected:
        table.add_row("rejected", _kv(fb.rejected))
    return _panel(table, "Feedback")


class _Dashboard:
    """Panels two by two on a wide terminal, one under the other on a narrow one."""

    def __init__(self, header: Panel, pairs: list[tuple[Panel, Panel]], footer: Panel) -> None:
        self.header, self.pairs, self.footer = header, pairs, footer

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.header
        for left, right in self.pairs:
            if options.max_width < _TWO_COLUMNS_MIN_WIDTH:
                yield left
                yield right
                continue
            row = Table.grid(expand=True, padding=(0, 1))
            row.add_column(ratio=1)
            row.add_column(ratio=1)
            row.add_row(left, right)
            yield row
        yield self.footer


def render(view: MetricsView, top: int = 10) -> RenderableType:
    """The dashboard's panels for ``view``; ``top`` rule hits (and twice as many lags) shown."""
    return _Dashboard(
        _header(view),
        [
            (_throughput(view), _latency(view)),
            (_decision_mix(view), _rule_hits(view, top)),
            (_dlq_degraded(view), _drift(view)),
            (_models(view), _lag(view, top)),
        ],
        _feedback(view),
    )
