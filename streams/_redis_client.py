"""The one place Redis clients are made, so the ACL user and TLS apply to every client.

Everything a connection needs (user, password, ``rediss://`` and the CA and client
certificate) is in ``Settings.redis_dsn``; this function turns that URL into a client and
turns a missing certificate file into a clear error instead of an SSL error at the first
command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis

from streams.exceptions import InfraError

__all__ = ["redis_client"]

_TLS_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")


def redis_client(dsn: str, **options: Any) -> redis.Redis:
    """A client for ``dsn`` (``Settings.redis_dsn``); ``options`` go to ``redis.Redis``."""
    query = parse_qs(urlsplit(dsn).query)
    for name in _TLS_FILES:
        for value in query.get(name, []):
            if not Path(value).is_file():
                raise InfraError(f"Redis TLS: {name} file {value} does not exist")
    return redis.Redis.from_url(dsn, **options)
