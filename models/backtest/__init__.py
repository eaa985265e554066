"""Backtests: the whole scoring system replayed over a history file, in event time.

``run_backtest(config, out_dir)`` runs the production operators in-process (features,
rules, the champion's ONNX ensemble, the online learner's blend, the policy), with labels
becoming visible only ``label_delay`` after each transaction and models trained and gated
at the end of the warm-up and every week, as the feedback loop does live. It writes
``summary.json`` and ``decisions.parquet`` to ``out_dir`` and, with the renderer,
``report.html`` (``render_report``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from models.backtest._config import BacktestConfig, BacktestError, parse_bound
from models.backtest._run import run_backtest

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["BacktestConfig", "BacktestError", "parse_bound", "render_report", "run_backtest"]


def render_report(report_dir: Path) -> Path:
    """Write ``report.html`` from a report folder's ``summary.json`` and ``decisions.parquet``.

    Imported on first use: the renderer (matplotlib) is not needed to run a backtest.
    """
    from models.backtest._report import render_report as render

    path: Path = render(report_dir)
    return path
