"""``aliases.json``: which version is champion and challenger, and how it came to be.

The file is small and rewritten whole (temp file + ``os.replace``) under an exclusive
``flock`` on ``<root>/.lock``, so two retrains finishing together cannot lose an
update and a scorer reading it never sees half a file. The history is append-only: it
is the audit trail of every promotion, and ``rollback`` is computed from it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from models._fs import private_dir
from models.exceptions import RegistryError
from models.manifest import PLAIN_NAME, write_atomically

__all__ = [
    "ALIASES_FILENAME",
    "Action",
    "AliasEvent",
    "Aliases",
    "Role",
    "locked",
    "read_aliases",
    "write_aliases",
]

ALIASES_FILENAME = "aliases.json"
_LOCK_FILENAME = ".lock"

Role = Literal["champion", "challenger"]
Action = Literal["promote", "rollback", "publish"]


class AliasEvent(BaseModel):
    """One line of the audit trail: ``role`` went from ``previous`` to ``version``.

    ``publish`` events re-announce an unchanged alias (``previous == version``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: AwareDatetime
    role: Role
    version: str | None = Field(pattern=PLAIN_NAME)
    previous: str | None = Field(pattern=PLAIN_NAME)
    action: Action


class Aliases(BaseModel):
    """The content of ``aliases.json``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    champion: str | None = Field(default=None, pattern=PLAIN_NAME)
    challenger: str | None = Field(default=None, pattern=PLAIN_NAME)
    history: tuple[AliasEvent, ...] = ()

    def role_of(self, version: str) -> Role | None:
        """The alias ``version`` holds, if any."""
        if self.champion == version:
            return "champion"
        if self.challenger == version:
            return "challenger"
        return None

    def champion_lineage(self) -> list[str]:
        """The champions a rollback walks back through, oldest first, current last.

        Replays the history as a stack: a promotion pushes, a rollback pops. After
        promoting A, B, C and rolling back once, the lineage is [A, B].
        """
        stack: list[str] = []
        for event in self.history:
            if event.role != "champion" or event.version is None:
                continue
            if event.action == "rollback" and stack:
                stack.pop()
            if event.action != "publish" and (not stack or stack[-1] != event.version):
                stack.append(event.version)
        return stack

    def rollback_target(self) -> str | None:
        """The champion before the current one, or None when there is nothing to go back to."""
        lineage = self.champion_lineage()
        if len(lineage) < 2 or lineage[-1] != self.champion:
            return None
        return lineage[-2]


def read_aliases(root: Path) -> Aliases:
    """The registry's aliases; an empty registry has none."""
    path = root / ALIASES_FILENAME
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return Aliases()
    except OSError as exc:
        raise RegistryError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    try:
        return Aliases.model_validate_json(text)
    except ValidationError as exc:
        raise RegistryError(f"{path}: invalid aliases file: {exc}") from exc


def write_aliases(root: Path, aliases: Aliases) -> None:
    """Replace ``aliases.json`` atomically (call inside :func:`locked`)."""
    write_atomically(root / ALIASES_FILENAME, (aliases.model_dump_json(indent=2) + "\n").encode())


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """Hold the registry's exclusive lock: one alias change at a time, across processes."""
    private_dir(root)
    descriptor = os.open(root / _LOCK_FILENAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock
