"""The backtest report's charts, drawn with Matplotlib's Agg canvas into inline PNGs.

The report must open offline and travel as one file, so every chart is a base64 PNG
embedded in the HTML. Figures are built with :class:`matplotlib.figure.Figure` and an
explicit Agg canvas rather than ``pyplot``: no global figure registry, no display needed,
safe to call from a CLI or a worker thread. Text from the data (rule ids, model versions)
is drawn with mathtext disabled, so a ``$`` in a rule id is printed, not parsed.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any, cast

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter
from numpy.typing import NDArray

from models.backtest._report_data import KINDS, Caught, Curve, RuleStat

__all__ = [
    "caught_chart",
    "decision_mix_chart",
    "latency_chart",
    "pr_roc_chart",
    "rules_chart",
    "score_histogram_chart",
    "weekly_chart",
]

_DPI = 110
_RC: dict[Any, Any] = {  # Any keys: Matplotlib types them as a Literal of every name
    "text.parse_math": False,
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
}
KIND_COLOURS = {"APPROVE": "#5b9f6e", "REVIEW": "#e3a33b", "BLOCK": "#c8453c"}
_ACTION_COLOURS = {**KIND_COLOURS, "ALLOW": "#8fbf9a", "SHADOW": "#b0b0b0"}
_FRAUD, _LEGIT = "#c8453c", "#3b6fb6"
_MAX_LABEL = 28


def pr_roc_chart(
    curves: Sequence[Curve], points: Sequence[tuple[str, float, float]], prevalence: float
) -> str:
    """Precision-recall (left) and ROC (right); ``points`` are (name, recall, precision)."""
    with mpl.rc_context(_RC):
        fig = Figure(figsize=(10, 4.2), dpi=_DPI, layout="constrained")
        pr_axes, roc_axes = fig.subplots(1, 2)
        for curve in curves:
            label = f"{curve.name} (AP {curve.ap:.3f}, AUC {curve.auc:.3f})"
            pr_axes.plot(curve.recall, curve.precision, lw=1.6, label=label)
            roc_axes.plot(curve.fpr, curve.tpr, lw=1.6, label=label)
        for name, recall, precision in points:
            pr_axes.scatter(
                [recall],
                [precision],
                s=44,
                marker="D",
                zorder=3,
                color=KIND_COLOURS.get(name, "black"),
                edgecolors="black",
                label=f"{name} (as decided)",
            )
        pr_axes.axhline(prevalence, color="grey", ls=":", lw=1, label=f"chance ({prevalence:.4f})")
        roc_axes.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="chance")
        pr_axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
        roc_axes.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1))
        roc_axes.set_ylim(0, 1.02)
        pr_axes.set_title("Precision-recall")
        roc_axes.set_title("ROC")
        pr_axes.legend(loc="lower left", fontsize=8)
        roc_axes.legend(loc="lower right", fontsize=8)
        return _png(fig)


def score_histogram_chart(fraud: NDArray[np.float64], legit: NDArray[np.float64]) -> str:
    """Score histograms of both classes on shared bins, counts on a log scale."""
    with mpl.rc_context(_RC):
        fig = Figure(figsize=(10, 3.6), dpi=_DPI, layout="constrained")
        axes = fig.subplots()
        both = np.concatenate([fraud, legit])
        edges = np.linspace(min(float(both.min()), 0.0), max(float(both.max()), 1.0), 51)
        for values, colour, name in ((legit, _LEGIT, "legit"), (fraud, _FRAUD, "fraud")):
            counts, _ = np.histogram(values, bins=edges)
            axes.stairs(counts, edges, fill=True, alpha=0.35, color=colour)
            axes.stairs(counts, edges, color=colour, lw=1.4, label=f"{name} ({values.size:,})")
        axes.set_yscale("log")
        axes.yaxis.set_major_formatter(FuncFormatter(_compact))
        axes.set_ylim(bottom=0.8)
        axes.set(xlabel="score", ylabel="transactions (log scale)")
        axes.legend(loc="upper center")
        return _png(fig)


def weekly_chart(
    starts: NDArray[np.datetime64],
    metrics: Mapping[str, NDArray[np.float64]],
    changes: Sequence[tuple[np.datetime64, str]],
) -> str:
    """One line per metric over the weeks, a dashed marker where the champion changed."""
    with mpl.rc_context(_RC):
        fig = Figure(figsize=(10, 3.8), dpi=_DPI, layout="constrained")
        axes = fig.subplots()
        for name, values in metrics.items():
            axes.plot(starts, values, marker="o", ms=4, lw=1.6, label=name)
        for when, version in changes:
            axes.axvline(_at(when), color="grey", ls="--", lw=0.9)
            axes.annotate(
                _short(version),
                (when, 1.0),
                xycoords=("data", "axes fraction"),
                rotation=90,
                ha="right",
                va="top",
                fontsize=7,
                color="dimgrey",
            )
        axes.set(ylabel="metric", ylim=(0, 1.02), xlabel="week starting")
        _date_axis(axes)
        axes.legend(loc="lower left", ncols=len(metrics))
        return _png(fig)


def decision_mix_chart(
    days: NDArray[np.datetime64], counts: NDArray[np.int64], first_model: np.datetime64 | None
) -> str:
    """Daily decisions stacked by kind (top) and the REVIEW/BLOCK share in percent (bottom)."""
    with mpl.rc_context(_RC):
        fig = Figure(figsize=(10, 5.2), dpi=_DPI, layout="constrained")
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
        totals = np.maximum(counts.sum(axis=0), 1)
        colours = [KIND_COLOURS[kind] for kind in KINDS]
        top.stackplot(days, counts, labels=KINDS, colors=colours, step="mid", alpha=0.85)
        shares = 100.0 * counts[1:] / totals
        bottom.stackplot(days, shares, labels=KINDS[1:], colors=colours[1:], step="mid")
        top.set(ylabel="decisions per day")
        bottom.set(ylabel="% of the day's decisions")
        if first_model is not None:
            for axes in (top, bottom):
                axes.axvline(_at(first_model), color="black", ls="--", lw=0.9)
            top.annotate(
                " first model live",
                (first_model, 0.98),
                xycoords=("data", "axes fraction"),
                ha="left",
                va="top",
                fontsize=8,
                backgroundcolor="white",
            )
        top.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=3)
        bottom.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=2)
        _date_axis(bottom)
        return _png(fig)


def rules_chart(stats: Sequence[RuleStat], decided: int) -> str:
    """Hit rate (left) and precision (right) of the most frequent rules."""
    with mpl.rc_context(_RC):
        shown = list(stats)[::-1]
        fig = Figure(figsize=(10, 1.2 + 0.28 * len(shown)), dpi=_DPI, layout="constrained")
        rate_axes, precision_axes = fig.subplots(1, 2, sharey=True)
        positions = np.arange(len(shown))
        rates = [100.0 * stat.hits / decided if decided else 0.0 for stat in shown]
        precisions = [np.nan if stat.precision is None else stat.precision for stat in shown]
        colours = [_ACTION_COLOURS.get(str(stat.action).upper(), "#7a7a7a") for stat in shown]
        rate_axes.barh(positions, rates, color=colours)
        precision_axes.barh(positions, precisions, color=colours)
        rate_axes.set_yticks(positions, [_short(stat.rule_id) for stat in shown])
        rate_axes.set(xlabel="% of decisions the rule fired on")
        actions = sorted({str(stat.action).upper() for stat in shown if stat.action})
        handles = [
            Patch(color=_ACTION_COLOURS.get(action, "#7a7a7a"), label=action) for action in actions
        ]
        if handles:
            precision_axes.legend(handles=handles, loc="lower right", title="action")
        precision_axes.set(xlabel="precision (fraud share of its labelled hits)", xlim=(0, 1))
        return _png(fig)


def caught_chart(caught: Caught) -> str:
    """One horizontal bar per group of fraud rows, annotated with counts and shares."""
    with mpl.rc_context(_RC):
        fig = Figure(figsize=(10, 2.4), dpi=_DPI, layout="constrained")
        axes = fig.subplots()
        names = ("rules only", "model only", "both", "missed")
        values = (caught.rules_only, caught.model_only, caught.both, caught.missed)
        colours = ("#e3a33b", "#3b6fb6", "#6a4c93", "#9a9a9a")
        positions = np.arange(len(names))[::-1]
        axes.barh(positions, values, color=colours)
        total = max(caught.total, 1)
        for position, value in zip(positions, values, strict=True):
            axes.annotate(
                f" {value:,} ({100.0 * value / total:.1f}%)",
                (value, position),
                va="center",
                fontsize=8,
            )
        axes.set_yticks(positions, names)
        axes.set_xlim(0, max(max(values), 1) * 1.2)
        axes.set(xlabel="fraud transactions in the evaluation window")
        return _png(fig)


def latency_chart(
    processed: NDArray[np.float64],
    ms_per_event: NDArray[np.float64],
    rows_per_second: NDArray[np.float64],
    stages: Mapping[str, float],
) -> str:
    """Per-batch time per event and rows/s over the run, and seconds per pipeline stage.

    Batches are noisy (a retrain, a garbage collection), so a rolling median over about
    2% of the batches is drawn on top of the raw values.
    """
    with mpl.rc_context(_RC):
        fig = Figure(figsize=(10, 6.0 if stages else 3.2), dpi=_DPI, layout="constrained")
        grid = fig.add_gridspec(2 if stages else 1, 2, height_ratios=(1, 1) if stages else None)
        latency_axes, rate_axes = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
        for axes, values, colour, label in (
            (latency_axes, ms_per_event, "#3b6fb6", "ms per event"),
            (rate_axes, rows_per_second, "#5b9f6e", "events per second"),
        ):
            axes.plot(processed, values, lw=0.7, color=colour, alpha=0.45, label="per batch")
            axes.plot(processed, _rolling_median(values), lw=1.6, color=colour, label="median")
            axes.set(ylabel=label, xlabel="events processed")
            axes.set_ylim(bottom=0)
            axes.xaxis.set_major_formatter(FuncFormatter(_compact))
            axes.legend(loc="lower right", ncols=2)
        if stages:
            stage_axes = fig.add_subplot(grid[1, :])
            names = list(stages)[::-1]
            seconds = np.array([stages[name] for name in names], dtype=np.float64)
            positions = np.arange(len(names))
            stage_axes.barh(positions, seconds, color="#6a4c93")
            total = float(seconds.sum()) or 1.0
            for position, value in zip(positions, seconds, strict=True):
                label = f" {value:,.2f} s ({100.0 * value / total:.0f}%)"
                stage_axes.annotate(label, (value, position), va="center", fontsize=8)
            stage_axes.set_yticks(positions, [_short(name) for name in names])
            stage_axes.set_xlim(0, max(float(seconds.max()), 1e-9) * 1.2)
            stage_axes.set(xlabel="seconds in stage (whole run)")
        return _png(fig)


def _rolling_median(values: NDArray[np.float64]) -> NDArray[np.float64]:
    window = max(1, values.size // 50)
    if window == 1:
        return values
    padded = np.pad(values, (window // 2, window - 1 - window // 2), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, window)
    return np.asarray(np.median(windows, axis=1), dtype=np.float64)


def _compact(value: float, _position: int | None = None) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.0f}"


def _date_axis(axes: Axes) -> None:
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def _at(when: np.datetime64) -> float:
    """A date as an axis position: Matplotlib's date units convert it, its stubs want a float."""
    return cast(float, when)


def _short(text: str) -> str:
    return text if len(text) <= _MAX_LABEL else text[: _MAX_LABEL - 1] + "…"


def _png(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    # No "Software" chunk: it would carry matplotlib's URL into the file.
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")
