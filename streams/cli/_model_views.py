"""Rich tables for model versions, shared by ``fraudstream train`` and ``fraudstream models``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.table import Column, Table

if TYPE_CHECKING:
    from models.manifest import EvaluationMetrics, GateRecord, Manifest, OperatingPoint
    from models.registry import Aliases, RegistryEntry

__all__ = ["gate_table", "history_table", "manifest_table", "versions_table"]


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _point(point: OperatingPoint | None) -> str:
    if point is None:
        return "-"
    return (
        f"≥{point.threshold:.3f}: P {_num(point.precision, 3)} / R {_num(point.recall, 3)}"
        f" ({point.flagged:,})"
    )


def _metric_rows(metrics: EvaluationMetrics | None) -> list[str]:
    if metrics is None:
        return ["-"] * 5
    return [
        _num(metrics.auc),
        _num(metrics.ap),
        _num(metrics.cp_at_100),
        _point(metrics.block),
        _point(metrics.review),
    ]


_METRIC_NAMES = ("AUC ROC", "average precision", "CP@100", "BLOCK", "REVIEW")


def gate_table(record: GateRecord, candidate_version: str) -> Table:
    """Champion and candidate side by side on the gate window, with the verdict."""
    window = f"{record.window.from_:%Y-%m-%d %H:%M} .. {record.window.to:%Y-%m-%d %H:%M} UTC"
    table = Table(
        "metric",
        f"champion {record.champion_version or '(none)'}",
        f"candidate {candidate_version}",
        title=f"gate: {record.rows:,} labelled rows ({record.frauds:,} fraud), {window}",
        title_justify="left",
    )
    for name, old, new in zip(
        _METRIC_NAMES, _metric_rows(record.champion), _metric_rows(record.candidate), strict=True
    ):
        table.add_row(name, old, new)
    colour = "green" if record.verdict == "champion" else "yellow"
    table.add_row("verdict", "", f"[bold {colour}]{record.verdict}[/]", end_section=False)
    table.add_row("reason", "", record.reason)
    return table


def manifest_table(manifest: Manifest, *, role: str | None, manifest_sha256: str) -> Table:
    """Everything an operator asks about one version, verified files included."""
    from models.pit import format_duration

    table = Table("", "value", title=f"model {manifest.version}", title_justify="left")
    table.add_row("role", role or "-")
    table.add_row("created", f"{manifest.created_at:%Y-%m-%d %H:%M:%S} UTC")
    table.add_row("parent", manifest.parent_version or "-")
    table.add_row("code revision", manifest.code_revision)
    cutoff = manifest.training_cutoff
    table.add_row("training cut-off", "-" if cutoff is None else f"{cutoff:%Y-%m-%d %H:%M} UTC")
    delay = manifest.label_delay
    table.add_row("label delay", "-" if delay is None else format_duration(delay))
    table.add_row(
        "training rows / frauds", f"{manifest.training_rows:,} / {manifest.training_frauds:,}"
    )
    table.add_row(
        "validation rows / frauds",
        f"{manifest.validation_rows:,} / {manifest.validation_frauds:,}",
    )
    for name, value in zip(_METRIC_NAMES, _metric_rows(manifest.metrics), strict=True):
        table.add_row(f"validation {name}", value)
    table.add_row("member weights", ", ".join(f"{m.name} {m.weight:.1f}" for m in manifest.members))
    table.add_row("thresholds basis", manifest.thresholds.basis)
    if manifest.gate is not None:
        table.add_row("gate", f"{manifest.gate.verdict}: {manifest.gate.reason}")
    if manifest.reference is not None:
        table.add_row("drift reference", f"{len(manifest.reference.features)} features + score")
    for file, digest in manifest.files:
        table.add_row(file, f"[green]sha256 ok[/] {digest[:16]}…")
    table.add_row("manifest sha256", manifest_sha256)
    return table


def versions_table(entries: list[RegistryEntry], aliases: Aliases) -> Table:
    """One row per registered version, oldest first, champion (★) and challenger (☆) marked.

    Metrics are each model's own validation metrics; ``models show`` has the gate's
    side-by-side comparison on a common window.
    """
    table = Table(
        Column("version", no_wrap=True),
        Column("role", no_wrap=True),
        Column("cut-off", no_wrap=True),
        "AUC",
        "AP",
        "CP@100",
        title=f"{len(entries)} model version(s) in the registry",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    for entry in entries:
        role = aliases.role_of(entry.version)
        mark = {"champion": "[bold green]★ champion[/]", "challenger": "[yellow]☆ challenger[/]"}
        manifest = entry.manifest
        if manifest is None:
            table.add_row(entry.version, mark.get(role or "", ""), f"[red]{entry.problem}[/]")
            continue
        cutoff = manifest.training_cutoff
        table.add_row(
            entry.version,
            mark.get(role or "", ""),
            "-" if cutoff is None else f"{cutoff:%Y-%m-%d}",
            _num(manifest.metrics.auc, 3),
            _num(manifest.metrics.ap, 3),
            _num(manifest.metrics.cp_at_100, 3),
        )
    return table


def history_table(aliases: Aliases, limit: int = 10) -> Table:
    """The latest alias changes, newest last."""
    table = Table(
        "at (UTC)",
        "action",
        "role",
        Column("version", overflow="fold"),
        Column("previous", overflow="fold"),
        title="alias history",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for event in aliases.history[-limit:]:
        table.add_row(
            f"{event.at:%m-%d %H:%M:%S}",
            event.action,
            event.role,
            event.version or "-",
            event.previous or "-",
        )
    return table
