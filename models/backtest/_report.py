"""``report.html``: the backtest as one self-contained page a data scientist wants to read.

A backtest is only useful if its result can be understood and shared: the page embeds its
charts as PNGs and its CSS, so it opens offline, from a mail attachment or a CI artefact.
It is rendered from the report folder alone (``summary.json`` and ``decisions.parquet``,
see the backtest contract), so the engine and the renderer evolve separately and an old
report can be re-rendered. Optional parts that are missing (no weekly metrics, no rules,
no labels) become a note in their section instead of an error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from models.backtest import _charts as charts
from models.backtest._html import figure, fmt, kv_table, note, page, section, table, tiles
from models.backtest._report_data import (
    KINDS,
    Decisions,
    ReportContext,
    curve,
    daily_mix,
    is_number,
    load_decisions,
    parse_instant_ms,
    window_mask,
)
from models.backtest._report_sections import (
    caught_section,
    latency_section,
    rules_section,
    weekly_section,
)
from models.exceptions import ModelsError

__all__ = ["render_report"]

SECTION_TITLES = (
    "Summary",
    "Precision-recall and ROC",
    "Score distribution by class",
    "Weekly metrics and model versions",
    "Decision mix over time",
    "Rules: hit rates and precision",
    "Rules versus model",
    "Latency and throughput",
)
_SCORE_NAMES = {"score": "decision score", "champion_score": "champion", "online_score": "online"}


def render_report(report_dir: Path) -> Path:
    """Render ``report_dir/report.html`` from the folder's summary and decisions; return its path.

    Raises :class:`~models.exceptions.ModelsError` if ``summary.json`` is missing or is
    not a JSON object. ``decisions.parquet`` is optional: without it the sections that
    need row-level data say so.
    """
    summary_path = report_dir / "summary.json"
    if not summary_path.is_file():
        raise ModelsError(f"no backtest summary at {summary_path}: run the backtest first")
    try:
        summary = orjson.loads(summary_path.read_bytes())
    except orjson.JSONDecodeError as error:
        raise ModelsError(f"{summary_path} is not valid JSON: {error}") from error
    if not isinstance(summary, dict):
        raise ModelsError(f"{summary_path} must hold a JSON object")
    context = _context(summary, load_decisions(report_dir / "decisions.parquet"))
    builders = (
        _summary_section,
        _curves_section,
        _histogram_section,
        weekly_section,
        _mix_section,
        rules_section,
        caught_section,
        latency_section,
    )
    parts = []
    for index, (title, build) in enumerate(zip(SECTION_TITLES, builders, strict=True)):
        how_to_read, body = build(context)
        anchor = f"s{index + 1}"
        parts.append((anchor, title, section(anchor, title, how_to_read, body)))
    lead = f"Backtest report rendered from {report_dir.name}/summary.json and decisions.parquet."
    target = report_dir / "report.html"
    temporary = target.with_suffix(".html.tmp")
    temporary.write_text(page("fraudstream backtest", lead, parts), encoding="utf-8")
    os.replace(temporary, target)
    return target


def _context(summary: dict[str, Any], decisions: Decisions | None) -> ReportContext:
    window = summary.get("eval")
    window = window if isinstance(window, dict) else {}
    start, end = window.get("start"), window.get("end")
    start_ms = parse_instant_ms(start)
    end_ms = parse_instant_ms(end, end_of_day=True)
    text = f"{start or 'the first decision'} to {end or 'the last decision'}"
    in_window = None if decisions is None else window_mask(decisions, start_ms, end_ms)
    return ReportContext(summary=summary, decisions=decisions, in_window=in_window, window=text)


def _summary_section(context: ReportContext) -> tuple[str, str]:
    summary, window = context.summary, context.part("eval")
    elapsed, rate = summary.get("elapsed_s"), summary.get("throughput_eps")
    headline = tiles(
        [
            ("events", fmt(summary.get("events"))),
            ("decided", fmt(summary.get("decided"))),
            ("dead-lettered", fmt(summary.get("dlq"))),
            ("elapsed", f"{fmt(elapsed, 1)} s"),
            ("throughput", f"{fmt(rate, 0)} events/s"),
            ("AUC (eval)", fmt(window.get("auc"))),
            ("AP (eval)", fmt(window.get("ap"))),
            ("CP@100 (eval)", fmt(window.get("cp100"))),
        ]
    )
    actions = []
    for name in ("block", "review"):
        point = window.get(name)
        point = point if isinstance(point, dict) else {}
        actions.append((name.upper(), point.get("precision"), point.get("recall")))
    body = headline + "<h3>Evaluation window</h3>"
    pairs: list[tuple[str, Any]] = [("start", window.get("start")), ("end", window.get("end"))]
    if context.decisions is not None and context.in_window is not None:
        frauds = context.in_window & (context.decisions.label == 1)
        pairs.append(("decisions in the window", int(context.in_window.sum())))
        pairs.append(("of which labelled fraud", int(frauds.sum())))
    body += kv_table(pairs)
    body += table(("decision", "precision", "recall"), actions, (False, True, True))
    protocol = context.part("protocol")
    body += "<h3>Protocol</h3>"
    body += (
        kv_table(sorted(protocol.items())) if protocol else note("summary.json has no protocol.")
    )
    how = (
        "Run totals first, then the evaluation window the metrics cover (labels as they were "
        "finally known). BLOCK and REVIEW precision/recall say how much of what each decision "
        "flagged was fraud and how much of the fraud it flagged. The protocol is how to rerun it."
    )
    return how, body


def _scored_labelled(context: ReportContext) -> tuple[Decisions, NDArray[np.bool_]] | None:
    if context.decisions is None or context.in_window is None:
        return None
    decisions = context.decisions
    return decisions, context.in_window & (decisions.label >= 0)


def _curves_section(context: ReportContext) -> tuple[str, str]:
    how = (
        f"Ranking quality over the evaluation window ({context.window}), one curve per score "
        "column. Up and to the right (PR) or up and to the left (ROC) is better; the diamonds "
        "are the precision and recall the BLOCK and REVIEW decisions actually reached. With "
        "rare fraud, read AP and the PR curve first: AUC looks high even for weak models."
    )
    data = _scored_labelled(context)
    if data is None:
        return how, note("decisions.parquet is missing: no curves.")
    decisions, usable = data
    if not decisions.has_labels:
        return how, note("The data has no labels (all -1): precision and recall are unknown.")
    curves = []
    for name, values in _distinct_scores(decisions, usable):
        result = curve(name, values, decisions.label[usable])
        if result is not None:
            curves.append(result)
    if not curves:
        return how, note("The evaluation window has no scored rows with both classes.")
    points = []
    for name in ("block", "review"):
        point = context.part("eval").get(name)
        if (
            isinstance(point, dict)
            and is_number(point.get("recall"))
            and is_number(point.get("precision"))
        ):
            points.append((name.upper(), float(point["recall"]), float(point["precision"])))
    scored = usable & ~np.isnan(decisions.scores.get("score", np.zeros(decisions.rows)))
    prevalence = float((decisions.label[scored] == 1).mean()) if scored.any() else 0.0
    body = figure(charts.pr_roc_chart(curves, points, prevalence), "precision-recall and ROC")
    rules_only = int((usable & ~scored).sum())
    if rules_only:
        body += note(f"{rules_only:,} labelled rows decided by rules only (no score) are left out.")
    return how, body


def _distinct_scores(
    decisions: Decisions, usable: NDArray[np.bool_]
) -> list[tuple[str, NDArray[np.float64]]]:
    """Score columns over ``usable`` rows, identical columns merged into one named "a = b".

    Without an online model the decision score is the champion's; two curves drawn
    exactly on top of each other would hide one of them.
    """
    distinct: list[tuple[str, NDArray[np.float64]]] = []
    for column, name in _SCORE_NAMES.items():
        if column not in decisions.scores:
            continue
        values = decisions.scores[column][usable]
        for index, (seen_name, seen) in enumerate(distinct):
            if np.array_equal(values, seen, equal_nan=True):
                distinct[index] = (f"{seen_name} = {name}", seen)
                break
        else:
            distinct.append((name, values))
    return distinct


def _histogram_section(context: ReportContext) -> tuple[str, str]:
    how = (
        "How the decision score separates the classes in the evaluation window. The less the "
        "red (fraud) and blue (legit) shapes overlap, the better; counts are on a log scale "
        "so the few frauds stay visible next to the many legitimate payments."
    )
    data = _scored_labelled(context)
    if data is None:
        return how, note("decisions.parquet is missing: no histogram.")
    decisions, usable = data
    score = decisions.scores.get("score")
    if score is None or not decisions.has_labels:
        return how, note("Scores or labels are missing: no histogram by class.")
    usable = usable & ~np.isnan(score)
    fraud = score[usable & (decisions.label == 1)]
    legit = score[usable & (decisions.label == 0)]
    if fraud.size == 0 or legit.size == 0:
        return how, note("The evaluation window lacks scored rows of one of the classes.")
    return how, figure(charts.score_histogram_chart(fraud, legit), "score histogram by class")


def _mix_section(context: ReportContext) -> tuple[str, str]:
    how = (
        "What the system decided each day (UTC). The upper chart shows volumes, the lower one "
        "the share sent to REVIEW and BLOCK, i.e. the analysts' workload and the customer "
        "friction; before the dashed line no model existed and rules decided alone."
    )
    decisions = context.decisions
    if decisions is None or decisions.rows == 0:
        return how, note("decisions.parquet is missing or empty: no decision mix.")
    days, counts = daily_mix(decisions)
    if days.size == 0:
        return how, note("No row has an APPROVE/REVIEW/BLOCK decision.")
    score = decisions.scores.get("score")
    first_model = None
    if score is not None and (~np.isnan(score)).any():
        first_ms = int(decisions.event_ms[~np.isnan(score)].min())
        first_model = np.datetime64(first_ms, "ms")
    body = figure(charts.decision_mix_chart(days, counts, first_model), "daily decision mix")
    totals = counts.sum(axis=1)
    overall = max(int(totals.sum()), 1)
    rows = [
        (kind, int(total), f"{100.0 * total / overall:.2f}%")
        for kind, total in zip(KINDS, totals, strict=True)
    ]
    body += table(("decision", "count", "share"), rows, (False, True, True))
    return how, body
