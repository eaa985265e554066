"""``fraudstream train``: a point-in-time model from labelled history, gated into the registry."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from streams.cli._common import console, err_console, friendly_errors
from streams.cli._models import open_registry

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["train"]


def train(
    data: Annotated[
        Path,
        typer.Option(
            "--data", help="Labelled history: a Parquet/CSV file or a folder of Parquet files."
        ),
    ],
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="field=COLUMN for files with other column names."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            help="Training cut-off: a date (midnight UTC) or RFC 3339 time; default: last event."
        ),
    ] = None,
    label_delay: Annotated[
        str, typer.Option(help="Time until a label is known (7d, 12h, 30m...).")
    ] = "7d",
    gate_window: Annotated[
        str, typer.Option(help="Newest labelled data the gate compares models on.")
    ] = "7d",
    registry: Annotated[
        bool,
        typer.Option(
            "--registry", help="Register and gate the model (default unless --out/FRAUD_MODEL_DIR)."
        ),
    ] = False,
    registry_dir: Annotated[
        Path | None,
        typer.Option("--registry-dir", help="Registry root (implies --registry)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Write a plain model folder instead of registering (no gate)."),
    ] = None,
    publish: Annotated[
        bool, typer.Option(help="Announce the new champion/challenger on model-updates.")
    ] = True,
    jobs: Annotated[int, typer.Option(help="Threads for XGBoost.", min=1)] = 1,
) -> None:
    """Train the XGBoost + logistic-regression ensemble as of a cut-off, and gate it.

    Features come from replaying the history (up to the cut-off) through the live
    velocity operators; a label is used only if event_time + label delay <= cut-off.
    The newest 20 % of labelled rows validate the model and fit the BLOCK threshold
    (FRAUD_BLOCK_TARGET_PRECISION) and REVIEW threshold (FRAUD_REVIEW_SHARE of traffic).
    In registry mode the model then becomes champion only if it beats the champion's
    average precision on the newest labelled window without losing more than 0.01 AUC;
    otherwise it becomes challenger.
    """
    import time

    from rich.table import Table

    from models.ensemble import EnsembleMember, LogisticMember, ThresholdPolicy, XGBoostMember
    from models.gate import GatePolicy
    from models.offline_store import read_labelled_history
    from models.pit import format_duration, parse_cutoff, parse_duration, point_in_time_dataset
    from models.retrain import retrain, train_to_folder
    from schemas.history import parse_mapping
    from streams.cli._model_views import gate_table, manifest_table
    from streams.settings import get_settings

    settings = get_settings()
    if out is not None and (registry or registry_dir is not None):
        raise typer.BadParameter("--out writes a plain folder; it excludes --registry")
    folder = out or (None if registry or registry_dir else settings.model_dir)
    started = time.perf_counter()
    with friendly_errors():
        cutoff = None if until is None else parse_cutoff(until)
        delay = parse_duration(label_delay)
        gate_policy = GatePolicy(window=parse_duration(gate_window))
        policy = ThresholdPolicy(
            target_precision=settings.block_target_precision,
            review_share=settings.review_share,
        )
        members: list[EnsembleMember] = [XGBoostMember(n_jobs=jobs), LogisticMember()]
        target = (
            None if folder is not None else open_registry(settings, registry_dir, publish=publish)
        )
        with _progress() as progress:
            task = progress.add_task("reading history", total=None)
            frame = read_labelled_history(
                data,
                parse_mapping(mapping or []),
                on_file=lambda done, total: progress.update(task, completed=done, total=total),
            )
            if "label" not in frame.columns:
                raise typer.BadParameter("the data has no label column (use --map label=COLUMN)")
            progress.update(
                task, description=f"replaying {len(frame):,} transactions through the features"
            )
            dataset = point_in_time_dataset(frame, cutoff, delay)
            del frame

            def stage(text: str) -> None:
                progress.update(task, description=text, total=None, completed=0)

            if target is None:
                assert folder is not None  # noqa: S101 - narrowing: folder mode
                manifest = train_to_folder(
                    dataset, folder, members=members, threshold_policy=policy, on_stage=stage
                )
                outcome = None
            else:
                outcome = retrain(
                    dataset,
                    target,
                    members=members,
                    threshold_policy=policy,
                    gate_policy=gate_policy,
                    on_stage=stage,
                )
                manifest = outcome.manifest
    summary = Table("", "value", title="point-in-time training set", title_justify="left")
    summary.add_row("cut-off", f"{dataset.cutoff:%Y-%m-%d %H:%M:%S} UTC")
    summary.add_row(
        "label delay",
        f"{format_duration(delay)} (labels up to {dataset.labels_known_until:%Y-%m-%d %H:%M})",
    )
    summary.add_row("transactions replayed", f"{dataset.replayed:,}")
    summary.add_row("labelled examples", f"{len(dataset.training.labels):,}")
    summary.add_row("labels withheld (not yet known)", f"{dataset.withheld:,}")
    summary.add_row("took", f"{time.perf_counter() - started:.1f} s")
    console.print(summary)
    where = folder if outcome is None else outcome.path
    assert where is not None  # noqa: S101 - narrowing: one of the two modes ran
    role = None if outcome is None else outcome.event.role
    console.print(manifest_table(manifest, role=role, manifest_sha256=_sha256(where)))
    if outcome is None or target is None:
        return
    console.print(gate_table(outcome.gate, manifest.version))
    told = "published" if target.publishing and not outcome.publish_error else "not published"
    console.print(f"{manifest.version} is now the [bold]{outcome.event.role}[/] ({told})")
    if outcome.publish_error:
        err_console.print(f"[bold yellow]warning:[/] {outcome.publish_error}", soft_wrap=True)
        raise typer.Exit(1)


def _sha256(folder: Path) -> str:
    from models.manifest import MANIFEST_FILENAME, sha256_bytes

    return sha256_bytes((folder / MANIFEST_FILENAME).read_bytes())


def _progress() -> Progress:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
