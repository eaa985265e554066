"""The console's web server: uvicorn on a thread of its own, beside the Faust worker.

The feedback service's batches are synchronous work on Faust's event loop; a console on
that loop would freeze while a batch is applied. Its own thread and loop keep the page
responsive whatever the stream is doing, and the socket is bound before the thread
starts, so a taken port is a clear error at start-up rather than a silent thread exit.
"""

from __future__ import annotations

import socket
import threading

import uvicorn
from starlette.types import ASGIApp

from streams.exceptions import ConsoleError

__all__ = ["ConsoleServer"]


class ConsoleServer:
    """Serves an ASGI app on ``host:port`` from a daemon thread until :meth:`stop`."""

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
        except OSError as exc:
            self._socket.close()
            raise ConsoleError(f"review console: cannot listen on {host}:{port}: {exc}") from None
        self._socket.listen(128)
        self.host, self.port = host, self._socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,  # URLs carry tx ids and filters; our own log says what matters
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="console", daemon=True
        )

    @property
    def url(self) -> str:
        """Where an analyst points the browser."""
        return f"http://{self.host}:{self.port}/"

    def start(self) -> None:
        """Start serving (returns at once)."""
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop accepting, finish open requests (up to ``timeout_s``), close the socket."""
        self._server.should_exit = True
        self._thread.join(timeout_s)
        self._socket.close()
