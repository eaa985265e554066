"""``run_backtest``: the whole system over a history file, in event time, in-process.

1. Read the file and featurise it once with the production operators
   (:mod:`models.backtest._history`).
2. Lay out event time: the warm-up end (first model), the week boundaries (retrains,
   counted from the evaluation start so that each reported week has one champion) and
   micro-batches of ``batch`` in between; every boundary is a batch edge.
3. Walk the batches in order. At a batch start: a scheduled cut-off trains/gates a model
   (:mod:`models.backtest._lifecycle`), then the online learner learns the labels visible
   by then (:mod:`models.backtest._online`); then the batch is decided as the live engine
   decides it (:mod:`models.backtest._decide`). So every decision is made with models
   trained only on labels known at its batch start.
4. Evaluate (:mod:`models.backtest._metrics`), write ``decisions.parquet`` and
   ``summary.json``, and render ``report.html`` when the renderer is installed.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.backtest._config import BacktestConfig, iso_ms
from models.backtest._decide import decide, rule_columns
from models.backtest._history import Prepared, prepare, read_rows
from models.backtest._lifecycle import Lifecycle
from models.backtest._metrics import WEEK_MS, Window, evaluate_window
from models.backtest._online import OnlineFeed
from models.backtest._output import Collected, write_summary
from models.backtest._worker import WorkerPool
from operators._blend import OnlineBlend
from operators.engine import DECISION_FEATURES
from operators.rules import RuleSet

__all__ = ["Schedule", "run_backtest", "schedule"]

_DAY_MS = 86_400_000
Progress = Callable[[int, int], None]
Stage = Callable[[str], None]


class Schedule:
    """Event-time layout of a run: batch edges, model cut-offs, evaluation window (ms)."""

    def __init__(
        self, edges: list[int], cutoffs: list[int], eval_start: int, eval_end: int, warm: int
    ) -> None:
        self.edges = edges
        self.cutoffs = cutoffs
        self.eval_start = eval_start
        self.eval_end = eval_end
        self.warmup_end = warm


def schedule(event_ms: np.ndarray[Any, Any], config: BacktestConfig, labelled: bool) -> Schedule:
    """Batch edges and model cut-offs for events ``event_ms`` (sorted); see the module doc."""
    first, last = int(event_ms[0]), int(event_ms[-1])
    warm = first // _DAY_MS * _DAY_MS + _ms(config.warmup)  # from the first event's midnight
    eval_start = _epoch_ms(config.eval_start) if config.eval_start is not None else warm
    end_of_data = (last // _DAY_MS + 1) * _DAY_MS  # the midnight after the last event
    eval_end = _epoch_ms(config.eval_end) if config.eval_end is not None else end_of_data
    cutoffs: list[int] = []
    if labelled and warm <= last:
        cutoffs.append(warm)
        if config.retrain == "weekly":
            week = eval_start + ((warm - eval_start) // WEEK_MS + 1) * WEEK_MS
            cutoffs.extend(range(week, last + 1, WEEK_MS))
    step = _ms(config.batch)
    grid = range(eval_start + ((first - eval_start) // step + 1) * step, last + 1, step)
    edges = sorted({first, *grid, *cutoffs, last + 1})
    return Schedule(edges, cutoffs, eval_start, eval_end, warm)


def run_backtest(
    config: BacktestConfig,
    out_dir: Path,
    *,
    on_progress: Progress | None = None,
    on_stage: Stage | None = None,
) -> dict[str, Any]:
    """Backtest ``config`` into ``out_dir``; return the summary (also in ``summary.json``).

    ``on_progress(done, total)`` is called with decided rows after every batch (and with
    0 before featurising); ``on_stage`` names each step as it starts.
    """
    progress = on_progress or (lambda _done, _total: None)
    stage = on_stage or (lambda _name: None)
    begun = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stages: dict[str, float] = {}

    stage("read the file")
    started = time.perf_counter()
    frame = read_rows(config)
    rules = RuleSet.from_file(config.rules) if config.rules is not None else RuleSet.default()
    stages["read"] = time.perf_counter() - started
    progress(0, len(frame))
    work_dir = Path(tempfile.mkdtemp(prefix=".backtest-", dir=out_dir))
    # Workers start now: importing the training libraries overlaps the featurisation.
    pool = WorkerPool(config.workers, work_dir) if config.workers and "label" in frame else None
    try:
        stage(f"featurise {len(frame):,} transactions")
        prepared = prepare(frame, config, time.perf_counter)
        del frame
        stages.update(prepared.timings)
        plan = schedule(prepared.event_ms, config, prepared.has_labels)
        models_dir = out_dir / "models"
        _clear_models(models_dir)
        lifecycle = Lifecycle(prepared, config, plan.cutoffs, models_dir, work_dir, pool)
        collected = _walk(prepared, config, plan, rules, lifecycle, stages, progress, stage)
    finally:
        if pool is not None:
            pool.close()
        shutil.rmtree(work_dir, ignore_errors=True)
    stages.update(lifecycle.seconds)

    stage("evaluate")
    started = time.perf_counter()
    delay = _ms(config.label_delay)
    users = pd.factorize(prepared.frame["user_id"])[0].astype(np.int64)
    window = Window(
        prepared.event_ms, prepared.labels, users, collected.scores, collected.codes,
        collected.versions,
    )  # fmt: skip
    evaluation, weeks, eval_rows = evaluate_window(window, plan.eval_start, plan.eval_end, delay)
    stages["evaluate"] = time.perf_counter() - started

    stage("write decisions.parquet")
    started = time.perf_counter()
    collected.write_decisions(prepared, out_dir / "decisions.parquet")
    stages["write"] = time.perf_counter() - started
    elapsed = time.perf_counter() - begun
    summary = _summary(config, prepared, plan, collected, lifecycle, evaluation, weeks, eval_rows)
    summary["elapsed_s"] = round(elapsed, 3)
    summary["throughput_eps"] = round(prepared.events / elapsed, 1) if elapsed > 0 else None
    summary["timing"] = {
        "stages": {name: round(seconds, 3) for name, seconds in stages.items()},
        "batches": collected.batches,
    }
    write_summary(summary, out_dir / "summary.json")
    _render(out_dir, stage)
    return summary


def _walk(
    prepared: Prepared,
    config: BacktestConfig,
    plan: Schedule,
    rules: RuleSet,
    lifecycle: Lifecycle,
    stages: dict[str, float],
    progress: Progress,
    stage: Stage,
) -> Collected:
    """Decide every batch in event-time order (see the module doc, step 3)."""
    collected = Collected(prepared.rows, rules)
    feed = OnlineFeed(prepared, config.online_labels)
    blend = OnlineBlend(config.online_weight, DECISION_FEATURES)
    columns = rule_columns(prepared.frame)
    pending = list(plan.cutoffs)
    bounds = np.searchsorted(prepared.event_ms, plan.edges, "left")
    for name in ("rules", "model", "policy", "online_learning"):
        stages.setdefault(name, 0.0)
    stage("decide batches")
    for index in range(len(plan.edges) - 1):
        start, lo, hi = plan.edges[index], int(bounds[index]), int(bounds[index + 1])
        while pending and pending[0] <= start:
            stage(f"model cut-off {iso_ms(pending[0])}")
            lifecycle.at(pending.pop(0))
        if hi == lo:
            continue
        started = time.perf_counter()
        feed.learn_until(start, collected.codes)
        online = feed.scorer(start) if config.online_weight > 0 else None
        stages["online_learning"] += time.perf_counter() - started
        started = time.perf_counter()
        result = decide(
            rules,
            lifecycle.champion,
            online,
            blend,
            prepared.features[lo:hi],
            prepared.merchant_labels[lo:hi],
            {name: values[lo:hi] for name, values in columns.items()},
            champion_reads_labels=config.champion_features == "decision",
        )
        seconds = time.perf_counter() - started
        for name, spent in result.stage_seconds.items():
            stages[name] += spent
        collected.add(lo, hi, result, seconds, iso_ms(start))
        progress(hi, prepared.rows)
    stages["online_labels_learnt"] = float(feed.learnt)
    return collected


def _summary(
    config: BacktestConfig,
    prepared: Prepared,
    plan: Schedule,
    collected: Collected,
    lifecycle: Lifecycle,
    evaluation: dict[str, Any],
    weeks: list[dict[str, Any]],
    eval_rows: np.ndarray[Any, Any],
) -> dict[str, Any]:
    labelled = prepared.has_labels
    return {
        "events": prepared.events,
        "decided": prepared.rows,
        "dlq": prepared.dlq,
        "elapsed_s": None,
        "throughput_eps": None,
        "eval": evaluation,
        "weeks": weeks,
        "models": lifecycle.models,
        "protocol": {**config.describe(), "warmup_end": iso_ms(plan.warmup_end)},
        "rules": collected.rule_stats(prepared.labels),
        "caught": collected.caught(eval_rows, prepared.labels) if labelled else None,
        "duplicates": prepared.duplicates,
        "dlq_reasons": prepared.dlq_reasons,
        "decisions": {
            kind: int((collected.codes == code).sum())
            for code, kind in enumerate(("APPROVE", "REVIEW", "BLOCK"))
        },
        "degraded": int(pd.notna(collected.causes).sum()),
        "first_event": iso_ms(int(prepared.event_ms[0])),
        "last_event": iso_ms(int(prepared.event_ms[-1])),
    }


def _render(out_dir: Path, stage: Stage) -> None:
    try:
        from models.backtest._report import render_report
    except ImportError:  # the renderer ships separately; the data files are complete
        return
    stage("render report.html")
    render_report(out_dir)


def _clear_models(models_dir: Path) -> None:
    """Remove the model folders of an earlier run into the same folder (ours only)."""
    if not models_dir.is_dir():
        return
    for folder in models_dir.glob("bt-*"):
        if folder.is_dir():
            shutil.rmtree(folder)


def _ms(delta: Any) -> int:
    return int(delta.total_seconds() * 1000)


def _epoch_ms(moment: Any) -> int:
    return int(pd.Timestamp(moment).value // 1_000_000)
