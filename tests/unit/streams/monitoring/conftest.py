"""Tiny local /metrics servers on free loopback ports, for discovery and CLI tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.unit.streams.monitoring._registries import Servers


@pytest.fixture
def serve() -> Iterator[Servers]:
    """Start servers with ``serve(registry)``; all are stopped after the test."""
    servers = Servers()
    yield servers
    servers.stop_all()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
