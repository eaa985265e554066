"""What ``infra up / down / status`` report about one server, for people and for scripts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal
from urllib.parse import urlsplit

__all__ = ["Progress", "ServerStatus", "quiet", "redis_address"]

Progress = Callable[[str], None]
"""Receives a one-line description of the slow step that is starting (for a spinner)."""

Mode = Literal["local", "external"]


def quiet(_message: str) -> None:
    """Swallow progress messages: the library stays silent unless a caller wants them."""


@dataclass(frozen=True)
class ServerStatus:
    """One server as seen right now, so a CLI table and ``--json`` show the same facts.

    ``running`` means "answers requests" (metadata for Kafka, PING for Redis), not merely
    "a process exists": a broker that is still starting is not running yet.
    """

    name: str
    address: str
    mode: Mode
    running: bool
    pid: int | None = None
    version: str | None = None
    message: str = ""

    def as_dict(self) -> dict[str, object]:
        """Return a JSON-ready mapping; it holds no secret (addresses carry no credentials)."""
        return asdict(self)


def redis_address(url: str) -> str:
    """Return ``host:port`` of a Redis URL, to show an external server without its password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    host = parts.hostname or "localhost"
    port = parts.port or 6379
    return f"{host}:{port}"
