"""``fraudstream rules``: check a rules file on labelled history before it goes live."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streams.cli._common import console, friendly_errors

__all__ = ["rules_app"]

rules_app = typer.Typer(help="Check rules files.", no_args_is_help=True)


@rules_app.command("test")
def rules_test(
    rules_file: Annotated[Path, typer.Argument(help="The rules YAML to check.")],
    data: Annotated[Path, typer.Option("--on", help="Labelled history (Parquet or CSV).")],
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="field=COLUMN for files with other column names."),
    ] = None,
) -> None:
    """Each rule's hits, hit rate and precision (fraud among hits) on labelled history.

    Features come from the same operators as the live scorer; `merchant_risk` is missing
    (it comes from Redis live), so rules on it never fire here.
    """
    import numpy as np
    from rich.table import Table

    from operators.features import FEATURE_NAMES, features_for_frame
    from operators.rules import RuleSet, rule_report
    from schemas.history import parse_mapping, read_history

    with friendly_errors(), console.status("loading") as status:
        rules = RuleSet.from_file(rules_file)
        frame = read_history(data, parse_mapping(mapping or []))
        if "label" not in frame.columns:
            raise typer.BadParameter("the file has no label column (use --map label=COLUMN)")
        status.update(f"computing features for {len(frame):,} transactions")
        matrix = features_for_frame(frame)
        batch: dict[str, object] = {name: matrix[:, i] for i, name in enumerate(FEATURE_NAMES)}
        for name in ("lat", "lon"):
            batch[name] = (
                frame[name].to_numpy(dtype=np.float64)
                if name in frame
                else np.full(len(frame), np.nan)
            )
        for name in ("user_id", "card_id", "merchant_id", "mcc", "currency", "country",
                     "channel", "device_id"):  # fmt: skip
            batch[name] = (
                frame[name].to_numpy(dtype=object)
                if name in frame
                else np.full(len(frame), None, dtype=object)
            )
        stats = rule_report(rules, batch, frame["label"].to_numpy())
    frauds = int(frame["label"].sum())
    table = Table(
        "rule", "action", "mode", "hits", "hit rate", "precision", "recall",
        title=f"{rules_file} on {len(frame):,} transactions ({frauds:,} fraud)",
    )  # fmt: skip
    for row in stats:
        table.add_row(
            row.rule_id,
            row.action,
            "shadow" if row.shadow else "active",
            f"{row.hits:,}",
            f"{row.hit_rate:.3%}",
            "-" if row.precision is None else f"{row.precision:.1%}",
            "-" if row.recall is None else f"{row.recall:.1%}",
        )
    console.print(table)
