"""The model registry: immutable version folders, aliases, verified promotion, publishing.

Layout (see the registry contract)::

    <root>/<version>/{*.onnx, explainer.onnx, manifest.json}   written once, read-only
    <root>/aliases.json                                        champion, challenger, history
    <root>/.staging-*/                                         a version being built

A version folder is built under a hidden staging name and renamed into place, so a
reader sees a complete version or none. Every alias change first verifies the version's
files against its manifest (a tampered model is never promoted), then rewrites
``aliases.json`` under the registry lock, then tells the scorers through the
``publish`` callback (a ``ModelUpdate`` keyed by role on ``model-updates``; ``None`` is
a tombstone retiring the challenger).
"""

from __future__ import annotations

import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import EllipsisType

from pydantic import ValidationError

from models._fs import private_dir
from models.exceptions import ManifestError, RegistryError
from models.manifest import (
    MANIFEST_FILENAME,
    PLAIN_NAME,
    Manifest,
    fsync_directory,
    read_manifest,
    read_verified_files,
    sha256_bytes,
)
from models.registry._aliases import (
    Aliases,
    AliasEvent,
    Role,
    locked,
    read_aliases,
    write_aliases,
)
from schemas import ModelUpdate, contains_pan

__all__ = [
    "ModelRegistry",
    "Publisher",
    "RegistryEntry",
    "UnpublishedChangeError",
    "VerifiedVersion",
]

#: Tells the scorers about an alias change: ``(role, update)``; ``None`` retires the role.
Publisher = Callable[[Role, ModelUpdate | None], None]
_STAGING_PREFIX = ".staging-"
_MAX_VERSION_LENGTH = 64
_READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


class UnpublishedChangeError(RegistryError):
    """The alias changed (``aliases.json`` is updated) but the scorers were not told.

    Scorers that start afterwards still find the change in ``aliases.json`` only if the
    topic has nothing for the role, so re-publish (``fraudstream models publish``) once
    Kafka is reachable. ``event`` is the recorded change.
    """

    def __init__(self, message: str, event: AliasEvent) -> None:
        super().__init__(message)
        self.event = event


@dataclass(frozen=True, slots=True)
class VerifiedVersion:
    """A version whose every file matched its manifest when this was built.

    ``manifest_sha256`` is the hash of the exact ``manifest.json`` bytes that were parsed
    and checked, the value a ``ModelUpdate`` pins.
    """

    manifest: Manifest
    path: Path
    manifest_sha256: str


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """A version folder as listed: its manifest, or why it could not be read."""

    version: str
    path: Path
    manifest: Manifest | None
    problem: str | None


class ModelRegistry:
    """A registry rooted at a directory; see the module doc for layout and guarantees."""

    def __init__(self, root: Path, *, publish: Publisher | None = None) -> None:
        self._root = root.absolute()
        if contains_pan(str(self._root)):
            # Every ModelUpdate carries a path under the root: the card-number guard on
            # messages would refuse them all, so refuse the root now, with the reason.
            raise RegistryError(
                f"registry path {self._root} holds a run of 13-19 digits (dashes or spaces "
                "allowed) that passes the card-number check, so no model under it could be "
                "announced; choose a path without such a run (e.g. 20261124T105648, not "
                "20261124-105648)"
            )
        self._publish = publish

    @property
    def root(self) -> Path:
        """The registry directory (absolute: it goes into ``ModelUpdate.uri``)."""
        return self._root

    @property
    def publishing(self) -> bool:
        """Whether alias changes are announced (a publisher was given)."""
        return self._publish is not None

    # -- reading -----------------------------------------------------------------------
    def aliases(self) -> Aliases:
        """Current champion, challenger and the alias history."""
        return read_aliases(self._root)

    def entries(self) -> list[RegistryEntry]:
        """Every version folder, oldest first; unreadable manifests are listed with why."""
        if not self._root.is_dir():
            return []
        entries: list[RegistryEntry] = []
        for path in sorted(self._root.iterdir()):
            if not path.is_dir() or path.name.startswith(".") or not _plain(path.name):
                continue
            try:
                entries.append(RegistryEntry(path.name, path, read_manifest(path), None))
            except ManifestError as exc:
                entries.append(RegistryEntry(path.name, path, None, str(exc)))

        def created(entry: RegistryEntry) -> tuple[str, str]:
            stamp = entry.manifest.created_at.isoformat() if entry.manifest else ""
            return stamp, entry.version

        return sorted(entries, key=created)

    def path(self, version: str) -> Path:
        """The folder of a registered version (refused: unknown or not a plain name)."""
        if not _plain(version):
            raise RegistryError(f"{version!r} is not a version name ({PLAIN_NAME})")
        folder = self._root / version
        if not (folder / MANIFEST_FILENAME).is_file():
            raise RegistryError(f"version {version!r} is not in the registry at {self._root}")
        return folder

    def manifest(self, version: str) -> Manifest:
        """The version's manifest, parsed and validated but with files not yet verified."""
        return read_manifest(self.path(version))

    def verify(self, version: str) -> VerifiedVersion:
        """Check every file of ``version`` against its manifest.

        Raises :class:`~models.exceptions.ModelIntegrityError` naming each missing or
        altered file.
        """
        return _verify(self.path(version), expected_version=version)

    # -- writing -----------------------------------------------------------------------
    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh hidden folder inside the registry to build a version in.

        Pass it to :meth:`add` to publish it; whatever is left of it on exit is removed.
        """
        private_dir(self._root)
        folder = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=self._root))
        try:
            yield folder
        finally:
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)

    def add(self, staged: Path) -> VerifiedVersion:
        """Move a complete, verified staging folder into place as ``<root>/<version>``.

        The rename is atomic; files become read-only. An existing version is never
        replaced: a version is immutable once registered.
        """
        verified = _verify(staged)
        if len(verified.manifest.version) > _MAX_VERSION_LENGTH:
            raise RegistryError(
                f"version {verified.manifest.version!r} is longer than {_MAX_VERSION_LENGTH} "
                "characters, the limit of a ModelUpdate's version"
            )
        target = self._root / verified.manifest.version
        if target.exists():
            raise RegistryError(f"version {verified.manifest.version!r} is already registered")
        for file in staged.iterdir():
            file.chmod(_READ_ONLY)
        staged.chmod(_READ_ONLY | stat.S_IWUSR | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        try:
            staged.rename(target)
        except OSError as exc:
            raise RegistryError(f"cannot register {target}: {exc.strerror or exc}") from exc
        fsync_directory(self._root)
        return VerifiedVersion(verified.manifest, target, verified.manifest_sha256)

    def promote(
        self,
        version: str,
        role: Role = "champion",
        *,
        expected_champion: str | EllipsisType | None = ...,
    ) -> AliasEvent:
        """Make a verified ``version`` the ``role``, record it, and publish the change.

        ``expected_champion`` (a version, or None for "no champion yet") refuses the
        change if another process changed the champion meanwhile, e.g. a concurrent
        retrain. A new champion that was the challenger stops being challenger (and the
        challenger is retired).
        """
        verified = self.verify(version)
        with locked(self._root):
            aliases = self.aliases()
            if expected_champion is not ... and aliases.champion != expected_champion:
                raise RegistryError(
                    f"the champion changed to {aliases.champion!r} while {version!r} was "
                    f"judged against {expected_champion!r}; nothing promoted"
                )
            current = aliases.role_of(version)
            if current == role:
                raise RegistryError(f"{version!r} is already the {role}")
            if role == "challenger" and current == "champion":
                raise RegistryError(f"{version!r} is the champion; it cannot be challenger")
            event = _event(role, version, getattr(aliases, role), "promote")
            changes: dict[str, object] = {role: version}
            retire = role == "champion" and aliases.challenger == version
            if retire:
                changes["challenger"] = None
            write_aliases(self._root, _with(aliases, event, **changes))
        self._announce(event, role, verified)
        if retire:
            self._announce(event, "challenger", None)
        return event

    def rollback(self) -> AliasEvent:
        """Restore the previous champion from the history (verified first) and publish it."""
        target = self.aliases().rollback_target()
        if target is None:
            raise RegistryError("no previous champion in the history to roll back to")
        verified = self.verify(target)
        with locked(self._root):
            aliases = self.aliases()
            if aliases.rollback_target() != target:
                raise RegistryError("the aliases changed during the rollback; nothing changed")
            event = _event("champion", target, aliases.champion, "rollback")
            changes: dict[str, object] = {"champion": target}
            retire = aliases.challenger == target
            if retire:
                changes["challenger"] = None
            write_aliases(self._root, _with(aliases, event, **changes))
        self._announce(event, "champion", verified)
        if retire:
            self._announce(event, "challenger", None)
        return event

    def republish(self, role: Role) -> AliasEvent:
        """Announce the current ``role`` again (after Kafka was unreachable), verified."""
        version = getattr(self.aliases(), role)
        verified = None if version is None else self.verify(version)
        event = _event(role, version, version, "publish")
        self._announce(event, role, verified)
        with locked(self._root):
            aliases = self.aliases()
            write_aliases(self._root, _with(aliases, event))
        return event

    def model_update(self, verified: VerifiedVersion, role: Role) -> ModelUpdate:
        """The ``ModelUpdate`` announcing ``verified`` as ``role``."""
        metrics = verified.manifest.metrics
        summary = {
            "auc": metrics.auc,
            "ap": metrics.ap,
            "cp_at_100": metrics.cp_at_100,
            "block_precision": metrics.block.precision if metrics.block else None,
            "block_recall": metrics.block.recall if metrics.block else None,
            "review_precision": metrics.review.precision if metrics.review else None,
            "review_recall": metrics.review.recall if metrics.review else None,
        }
        return ModelUpdate(
            version=verified.manifest.version,
            role=role,
            uri=str(verified.path.absolute()),
            sha256=verified.manifest_sha256,
            metrics={name: value for name, value in summary.items() if value is not None},
            published_at=datetime.now(UTC),
        )

    def _announce(self, event: AliasEvent, role: Role, verified: VerifiedVersion | None) -> None:
        if self._publish is None:
            return
        update = None if verified is None else self.model_update(verified, role)
        try:
            self._publish(role, update)
        except Exception as exc:  # the publisher's transport error, whatever its type
            raise UnpublishedChangeError(
                f"{role} is now {event.version!r} in aliases.json, but publishing the "
                f"ModelUpdate failed: {exc}; run `fraudstream models publish` when Kafka "
                "is reachable",
                event,
            ) from exc


def _verify(folder: Path, *, expected_version: str | None = None) -> VerifiedVersion:
    path = folder / MANIFEST_FILENAME
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest ({exc.strerror or exc})") from exc
    try:
        manifest = Manifest.model_validate_json(raw)
    except ValidationError as exc:
        raise ManifestError(f"{path}: invalid manifest: {exc}") from exc
    if expected_version is not None and manifest.version != expected_version:
        raise ManifestError(f"{path}: holds version {manifest.version!r}, not {expected_version!r}")
    read_verified_files(manifest, folder)
    return VerifiedVersion(manifest, folder, sha256_bytes(raw))


def _event(role: Role, version: str | None, previous: str | None, action: str) -> AliasEvent:
    fields = {"role": role, "version": version, "previous": previous, "action": action}
    return AliasEvent.model_validate({"at": datetime.now(UTC), **fields})


def _with(aliases: Aliases, event: AliasEvent, **changes: object) -> Aliases:
    return Aliases.model_validate(
        {**aliases.model_dump(), **changes, "history": [*aliases.history, event]}
    )


def _plain(name: str) -> bool:
    return re.fullmatch(PLAIN_NAME, name) is not None
