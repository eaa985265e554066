"""``fraudstream score``: run the scoring dataflow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streams.cli._common import friendly_errors

__all__ = ["score"]


def score(
    processes: Annotated[
        int, typer.Option(help="Bytewax processes sharing the partitions.", min=1)
    ] = 1,
    workers: Annotated[int, typer.Option(help="Worker threads per process.", min=1)] = 1,
    recovery_dir: Annotated[
        Path | None,
        typer.Option(help="Snapshot window state here; a restart resumes from it."),
    ] = None,
    process_id: Annotated[int | None, typer.Option(hidden=True)] = None,
    addresses: Annotated[str | None, typer.Option(hidden=True)] = None,
) -> None:
    """Score transactions into decisions until Ctrl-C.

    Reads `transactions`, writes `decisions` and `transactions-dlq`. The models come from
    the `model-updates` topic (champion decides, challenger scores in shadow and decides
    FRAUD_CHALLENGER_TRAFFIC_SHARE of users), swapped live between batches; without any
    update, from the registry's champion (FRAUD_REGISTRY_DIR). FRAUD_MODEL_DIR pins one
    model folder instead. Without a model, decisions are made by the rules alone and
    flagged degraded. Metrics are served on FRAUD_METRICS_PORT (+1 per process).
    """
    from streams.scorer import run_scorer
    from streams.settings import get_settings

    with friendly_errors():
        code = run_scorer(
            get_settings(),
            processes=processes,
            workers=workers,
            recovery_dir=recovery_dir,
            process_id=process_id,
            addresses=addresses.split(",") if addresses else None,
        )
    raise typer.Exit(code)
