"""``fraudstream train``: a model from labelled history, through the live feature code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streams.cli._common import console, friendly_errors

__all__ = ["train"]


def train(
    data: Annotated[Path, typer.Option("--data", help="Labelled history (Parquet or CSV).")],
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="field=COLUMN for files with other column names."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Model folder (default: FRAUD_MODEL_DIR or .fraudstream/model)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a model already in --out.")] = True,
    jobs: Annotated[int, typer.Option(help="Threads for XGBoost.", min=1)] = 1,
) -> None:
    """Train the XGBoost + logistic-regression ensemble and export it to ONNX.

    Features are computed by replaying the history through the same velocity operators
    the live scorer uses, so training and serving cannot drift apart. The newest 20 % of
    rows (by event time) validate the model, choose the member weights and the BLOCK and
    REVIEW thresholds. A running scorer picks up the new model between batches.
    """
    import time

    from rich.table import Table

    from models.ensemble import LogisticMember, XGBoostMember, train_ensemble
    from models.training_set import build_training_set
    from operators.features import FEATURE_NAMES
    from schemas.history import parse_mapping, read_history
    from streams.settings import get_settings

    target = out or get_settings().resolved_model_dir
    started = time.perf_counter()
    with friendly_errors(), console.status("reading history") as status:
        frame = read_history(data, parse_mapping(mapping or []))
        if "label" not in frame.columns:
            raise typer.BadParameter("the file has no label column (use --map label=COLUMN)")
        status.update(f"computing features for {len(frame):,} transactions")
        dataset = build_training_set(frame)
        manifest = train_ensemble(
            dataset.features,
            dataset.labels,
            dataset.event_times,
            FEATURE_NAMES,
            target,
            members=[XGBoostMember(n_jobs=jobs), LogisticMember()],
            overwrite=overwrite,
            on_stage=lambda stage: status.update(stage),
        )
    table = Table("", "value", title=f"model {manifest.version}", title_justify="left")
    table.add_row("folder", str(target))
    table.add_row(
        "training rows / frauds", f"{manifest.training_rows:,} / {manifest.training_frauds:,}"
    )
    table.add_row(
        "validation rows / frauds", f"{manifest.validation_rows:,} / {manifest.validation_frauds:,}"
    )
    table.add_row("validation AUC / AP", f"{manifest.metrics.auc:.4f} / {manifest.metrics.ap:.4f}")
    weights = ", ".join(f"{m.name} {m.weight:.1f}" for m in manifest.members)
    table.add_row("member weights", weights)
    table.add_row(
        "thresholds",
        f"block {manifest.thresholds.block:.4f}, review {manifest.thresholds.review:.4f}",
    )
    table.add_row("took", f"{time.perf_counter() - started:.1f} s")
    console.print(table)
