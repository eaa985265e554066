"""The report sections built mostly from ``summary.json``: weeks and models, rules, timing.

Each builder returns the section's "how to read it" sentence and its HTML body. The
engine writes these parts of the summary; when one is absent the builder falls back to
``decisions.parquet`` where that is possible and says so, or explains what is missing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.backtest import _charts as charts
from models.backtest._html import figure, fmt, note, table
from models.backtest._report_data import (
    Caught,
    ReportContext,
    RuleStat,
    caught_from_decisions,
    is_number,
    parse_instant_ms,
    rule_stats_from_decisions,
)

__all__ = ["caught_section", "latency_section", "rules_section", "weekly_section"]

_RULES_CHARTED = 25
_METRICS = (("auc", "AUC"), ("ap", "AP"), ("cp100", "CP@100"))


def weekly_section(context: ReportContext) -> tuple[str, str]:
    """Weekly AUC/AP/CP@100 with champion changes marked, then the weeks and models tables."""
    how = (
        "Each point is one week of decisions, scored by the models live at that time. A dashed "
        "line marks a week whose champion differs from the week before; a drop right after a "
        "new version points at that model, a slow slide at drift."
    )
    weeks = [week for week in context.records("weeks") if parse_instant_ms(week.get("start"))]
    body = ""
    if weeks:
        starts = np.array(
            [parse_instant_ms(week["start"]) for week in weeks], dtype="datetime64[ms]"
        )
        metrics = {
            label: np.array([_number(week.get(key)) for week in weeks], dtype=np.float64)
            for key, label in _METRICS
        }
        changes = []
        previous: Any = None
        for when, week in zip(starts, weeks, strict=True):
            version = week.get("model_version")
            if version is not None and version != previous:
                changes.append((when, str(version)))
            previous = version
        body += figure(charts.weekly_chart(starts, metrics, changes), "weekly metrics")
        rows = [
            (week.get("start"), *(week.get(key) for key, _ in _METRICS), week.get("model_version"))
            for week in weeks
        ]
        headers = ("week starting", "AUC", "AP", "CP@100", "champion")
        body += table(headers, rows, (False, True, True, True, False))
    else:
        body += note("summary.json has no weekly metrics (no weeks with a dated start).")
    models = context.records("models")
    body += "<h3>Model versions</h3>"
    if not models:
        return how, body + note("summary.json lists no models: every decision was rules-only.")
    rows = []
    for model in models:
        validation = model.get("validation")
        validation = validation if isinstance(validation, dict) else {}
        rows.append(
            (
                model.get("version"),
                model.get("trained_at"),
                model.get("role", model.get("verdict")),
                model.get("train_rows"),
                model.get("frauds"),
                *(validation.get(key) for key, _ in _METRICS),
                model.get("gate_reason"),
            )
        )
    columns: tuple[str, ...] = (
        "version",
        "live from",
        "role",
        "train rows",
        "frauds",
        "val AUC",
        "val AP",
    )
    columns += ("val CP@100", "gate")
    numeric = (False, False, False, True, True, True, True, True, False)
    return how, body + table(columns, rows, numeric)


def rules_section(context: ReportContext) -> tuple[str, str]:
    """Per-rule hit rate and precision, from the summary or recomputed from the decisions."""
    how = (
        "How often each active rule fired (share of all decisions) and how often it was right "
        "(fraud share among its labelled hits). A rule that fires a lot with low precision "
        "costs reviews and customer friction; colour is the rule's action."
    )
    decided = context.summary.get("decided")
    stats = _summary_rules(context)
    body = ""
    if not stats and context.decisions is not None:
        stats = rule_stats_from_decisions(context.decisions)
        if stats:
            body += note("summary.json has no rule statistics: computed from decisions.parquet.")
    if not stats:
        return how, note("No rule fired, or no rule statistics are available.")
    if not is_number(decided) and context.decisions is not None:
        decided = context.decisions.rows
    total = int(decided) if is_number(decided) else 0
    ranked = sorted(stats, key=lambda stat: (-stat.hits, stat.rule_id))
    body += figure(charts.rules_chart(ranked[:_RULES_CHARTED], total), "rule hit rates")
    if len(ranked) > _RULES_CHARTED:
        body += note(f"The chart shows the {_RULES_CHARTED} most frequent of {len(ranked)} rules.")
    rows = [
        (
            stat.rule_id,
            stat.action,
            stat.hits,
            f"{100.0 * stat.hits / total:.3f}%" if total else None,
            stat.fraud_hits,
            stat.precision,
        )
        for stat in ranked
    ]
    headers = ("rule", "action", "hits", "hit rate", "fraud hits", "precision")
    return how, body + table(headers, rows, (False, False, True, True, True, True))


def caught_section(context: ReportContext) -> tuple[str, str]:
    """Fraud in the evaluation window split into rules only / model only / both / missed."""
    how = (
        "Every fraud in the evaluation window, by what flagged it. 'Model only' is what the "
        "model adds to the rules, 'rules only' what the rules still add to the model, and "
        "'missed' is fraud that nothing flagged."
    )
    caught, body = _caught(context)
    if caught is None:
        return how, body
    if caught.total == 0:
        return how, body + note("The evaluation window holds no labelled fraud.")
    body += figure(charts.caught_chart(caught), "fraud caught by rules and model")
    rows = [
        (name, value, f"{100.0 * value / caught.total:.1f}%")
        for name, value in (
            ("rules only", caught.rules_only),
            ("model only", caught.model_only),
            ("both", caught.both),
            ("missed", caught.missed),
        )
    ]
    return how, body + table(
        ("fraud flagged by", "transactions", "share"), rows, (False, True, True)
    )


def latency_section(context: ReportContext) -> tuple[str, str]:
    """Per-batch cost over the run and where the time went, stage by stage."""
    how = (
        "Cost of the run batch by batch: time per event should stay flat (a rise means state "
        "or a model grew) and events per second is the replay speed. The stage breakdown "
        "shows where the elapsed time went."
    )
    timing = context.part("timing")
    batches = timing.get("batches")
    batches = (
        [item for item in batches if isinstance(item, dict)] if isinstance(batches, list) else []
    )
    rows = np.array([_number(item.get("rows")) for item in batches], dtype=np.float64)
    seconds = np.array([_number(item.get("seconds")) for item in batches], dtype=np.float64)
    valid = (rows > 0) & (seconds > 0)
    stages_raw = timing.get("stages")
    stages = (
        {str(name): float(value) for name, value in stages_raw.items() if is_number(value)}
        if isinstance(stages_raw, dict)
        else {}
    )
    body = ""
    if valid.any():
        processed = np.cumsum(np.where(valid, rows, 0.0))[valid]
        chart = charts.latency_chart(
            processed, 1000.0 * seconds[valid] / rows[valid], rows[valid] / seconds[valid], stages
        )
        body += figure(chart, "latency and throughput per batch")
    else:
        body += note("summary.json has no per-batch timing.")
    if stages:
        total = sum(stages.values()) or 1.0
        body += table(
            ("stage", "seconds", "share"),
            [
                (name, f"{value:,.2f}", f"{100.0 * value / total:.1f}%")
                for name, value in stages.items()
            ],
            (False, True, True),
        )
    decisions = context.decisions
    if decisions is not None and (~np.isnan(decisions.batch_seconds)).any():
        per_event = 1000.0 * decisions.batch_seconds[~np.isnan(decisions.batch_seconds)]
        quantiles = np.quantile(per_event, [0.5, 0.9, 0.99, 1.0]).tolist()
        body += "<h3>Time per event (ms, batch time shared by its rows)</h3>"
        body += table(("p50", "p90", "p99", "max"), [quantiles], (True, True, True, True))
    throughput = context.summary.get("throughput_eps")
    if is_number(throughput):
        body += f"<p>Whole run: {fmt(float(throughput), 0)} events per second.</p>"
    return how, body


def _summary_rules(context: ReportContext) -> list[RuleStat]:
    stats = []
    for item in context.records("rules"):
        hits = item.get("hits")
        if item.get("id") is None or not is_number(hits):
            continue
        fraud_hits, precision = item.get("fraud_hits"), item.get("precision")
        stats.append(
            RuleStat(
                rule_id=str(item["id"]),
                action=None if item.get("action") is None else str(item["action"]),
                hits=int(hits),
                fraud_hits=int(fraud_hits) if is_number(fraud_hits) else None,
                precision=float(precision) if is_number(precision) else None,
            )
        )
    return stats


def _caught(context: ReportContext) -> tuple[Caught | None, str]:
    caught = context.part("caught")
    keys = ("rules_only", "model_only", "both", "missed")
    counts = [caught.get(key) for key in keys]
    if all(is_number(count) for count in counts):
        return Caught(*(int(_number(count)) for count in counts)), ""
    if context.decisions is None or context.in_window is None:
        return None, note("summary.json has no 'caught' split and decisions.parquet is missing.")
    allow = {stat.rule_id for stat in _summary_rules(context) if stat.action == "ALLOW"}
    result = caught_from_decisions(context.decisions, context.in_window, allow)
    if result is None:
        return None, note("No labelled fraud with scores in the evaluation window: no split.")
    split, threshold = result
    how = (
        f"taken as the lowest score it flagged alone ({threshold:.4f})"
        if threshold is not None
        else "unknown (the model never flagged a transaction alone)"
    )
    return split, note(
        "summary.json has no 'caught' split: computed from decisions.parquet; "
        f"the model's review threshold is {how}."
    )


def _number(value: Any) -> float:
    return float(value) if is_number(value) else np.nan
