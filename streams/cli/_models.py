"""``fraudstream models``: list, show, promote, roll back and re-publish registry versions.

Every command that changes an alias verifies the version's files against its manifest
first and announces the change on ``model-updates``; ``show`` verifies too, so what it
prints is what a scorer would load.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from streams.cli._common import console, err_console, fail, friendly_errors

if TYPE_CHECKING:
    from models.registry import AliasEvent, ModelRegistry
    from streams.settings import Settings

__all__ = ["models_app", "open_registry"]

models_app = typer.Typer(
    help="The model registry: versions, champion, challenger.", no_args_is_help=True
)

RegistryDir = Annotated[
    Path | None,
    typer.Option(
        "--registry-dir",
        help="Registry root (default: FRAUD_REGISTRY_DIR or .fraudstream/registry).",
    ),
]
Publish = Annotated[
    bool,
    typer.Option(help="Announce the change on model-updates (skipped with a note without Kafka)."),
]


def open_registry(settings: Settings, registry_dir: Path | None, *, publish: bool) -> ModelRegistry:
    """The registry, with a Kafka publisher when publishing is wanted and possible.

    Publishing is skipped, with a note saying how to catch up, for ``--no-publish`` and
    when the broker or the topic is not there: the alias change still lands in
    ``aliases.json``, which scorers read at start-up when the topic has nothing.
    """
    from models.registry import ModelRegistry
    from streams.model_publisher import KafkaModelPublisher

    root = registry_dir or settings.resolved_registry_dir
    if not publish:
        console.print(
            "[yellow]note:[/] --no-publish: alias changes are recorded in aliases.json only; "
            "run `fraudstream models publish` to announce them to running scorers.",
            soft_wrap=True,
        )
        return ModelRegistry(root)
    publisher = KafkaModelPublisher(settings)
    reason = publisher.unreachable_reason()
    if reason is None:
        return ModelRegistry(root, publish=publisher)
    console.print(
        f"[yellow]note:[/] not publishing to {settings.topic_model_updates}: {reason}. "
        "The change is recorded in aliases.json; run `fraudstream models publish` once "
        "Kafka is up.",
        soft_wrap=True,
    )
    return ModelRegistry(root)


def report_change(registry: ModelRegistry, event: AliasEvent) -> None:
    """One line per alias change, saying whether scorers were told."""
    told = "published" if registry.publishing else "not published"
    console.print(
        f"{event.action}: [bold]{event.role}[/] {event.previous or '(none)'} -> "
        f"[bold]{event.version or '(none)'}[/] ({told})"
    )


@models_app.command("list")
def list_versions(registry_dir: RegistryDir = None) -> None:
    """Every registered version, oldest first; ★ marks the champion, ☆ the challenger."""
    from models.registry import ModelRegistry
    from streams.cli._model_views import history_table, versions_table
    from streams.settings import get_settings

    with friendly_errors():
        registry = ModelRegistry(registry_dir or get_settings().resolved_registry_dir)
        aliases = registry.aliases()
        console.print(versions_table(registry.entries(), aliases))
        if aliases.history:
            console.print(history_table(aliases))


@models_app.command("show")
def show(
    version: Annotated[str, typer.Argument(help="The version to inspect.")],
    registry_dir: RegistryDir = None,
) -> None:
    """A version's manifest, metrics and gate report, after checking every file's sha256."""
    from models.registry import ModelRegistry
    from streams.cli._model_views import gate_table, manifest_table
    from streams.settings import get_settings

    with friendly_errors():
        registry = ModelRegistry(registry_dir or get_settings().resolved_registry_dir)
        verified = registry.verify(version)
        role = registry.aliases().role_of(version)
    manifest = verified.manifest
    console.print(manifest_table(manifest, role=role, manifest_sha256=verified.manifest_sha256))
    if manifest.gate is not None:
        console.print(gate_table(manifest.gate, manifest.version))


@models_app.command("promote")
def promote(
    version: Annotated[str, typer.Argument(help="The version to promote.")],
    challenger: Annotated[
        bool, typer.Option("--challenger", help="Make it the challenger instead.")
    ] = False,
    publish: Publish = True,
    registry_dir: RegistryDir = None,
) -> None:
    """Make a version the champion (or challenger); its files are verified first."""
    role: Literal["champion", "challenger"] = "challenger" if challenger else "champion"
    _change(lambda registry: registry.promote(version, role), registry_dir, publish)


@models_app.command("rollback")
def rollback(publish: Publish = True, registry_dir: RegistryDir = None) -> None:
    """Restore the previous champion recorded in the alias history."""
    _change(lambda registry: registry.rollback(), registry_dir, publish)


@models_app.command("publish")
def publish_aliases(registry_dir: RegistryDir = None) -> None:
    """Announce the current champion and challenger again (after Kafka was unreachable)."""
    from streams.settings import get_settings

    with friendly_errors():
        registry = open_registry(get_settings(), registry_dir, publish=True)
        if not registry.publishing:
            raise fail("cannot publish: Kafka or the topic is not available")
        for role in ("champion", "challenger"):
            report_change(registry, registry.republish(role))


def _change(
    action: Callable[[ModelRegistry], AliasEvent],
    registry_dir: Path | None,
    publish: bool,
) -> None:
    from models.registry import UnpublishedChangeError
    from streams.settings import get_settings

    with friendly_errors():
        registry = open_registry(get_settings(), registry_dir, publish=publish)
        try:
            event = action(registry)
        except UnpublishedChangeError as exc:
            err_console.print(f"[bold yellow]warning:[/] {exc}", soft_wrap=True)
            raise typer.Exit(1) from None
        report_change(registry, event)
