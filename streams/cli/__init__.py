"""The single ``fraudstream`` entry point; each command group lives in its own module.

Command modules import heavy libraries (bytewax, onnxruntime, pandas) inside the command
functions so that ``fraudstream --help`` stays instant.
"""

from __future__ import annotations

import typer

from streams.cli._backtest import backtest
from streams.cli._bench import bench
from streams.cli._console import console_app
from streams.cli._decisions import decisions_app
from streams.cli._demo import demo
from streams.cli._feedback import feedback, retrain
from streams.cli._infra import infra_app
from streams.cli._label import label
from streams.cli._metrics import metrics_app
from streams.cli._models import models_app
from streams.cli._produce import produce
from streams.cli._replay import replay
from streams.cli._rules import rules_app
from streams.cli._score import score
from streams.cli._simulate import simulate
from streams.cli._topics import topics_app
from streams.cli._train import train

__all__ = ["app"]

app = typer.Typer(
    name="fraudstream",
    help="Real-time fraud detection on Kafka: produce events, score them, read decisions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
)
app.add_typer(infra_app, name="infra")
app.add_typer(topics_app, name="topics")
app.add_typer(decisions_app, name="decisions")
app.add_typer(rules_app, name="rules")
app.add_typer(models_app, name="models")
app.add_typer(metrics_app, name="metrics")
app.add_typer(console_app, name="console")
app.command()(simulate)
app.command()(produce)
app.command()(replay)
app.command()(score)
app.command()(train)
app.command()(retrain)
app.command()(feedback)
app.command()(label)
app.command()(demo)
app.command()(bench)
app.command()(backtest)
