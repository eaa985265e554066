"""A TCP proxy that delays every response by a delay switched at runtime: a slow Redis.

It runs an asyncio loop in a child process of its own (so that the test process's threads,
busy producing and polling Kafka, never add their GIL contention to the proxied calls).
Bytes from the client go upstream at once; bytes coming back are held until ``delay_s``
after they arrived (order kept), so every reply, the connection handshake's included, is
late by the delay in force when it arrived. A client that gave up (its own timeout) simply
loses the reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.synchronize
import time
from multiprocessing.sharedctypes import Synchronized
from types import TracebackType

__all__ = ["LatencyProxy"]


class LatencyProxy:
    """``127.0.0.1:<port>`` forwarding to ``upstream``; use as a context manager."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        context = multiprocessing.get_context("spawn")  # no fork of librdkafka's threads
        self._delay: Synchronized[float] = context.Value("d", 0.0)
        self._port: Synchronized[int] = context.Value("i", 0)
        self._ready = context.Event()
        self._process = context.Process(
            target=_serve_forever,
            args=(upstream_host, upstream_port, self._delay, self._port, self._ready),
            name="latency-proxy",
            daemon=True,
        )

    @property
    def port(self) -> int:
        """The port clients connect to."""
        return int(self._port.value)

    @property
    def delay_s(self) -> float:
        """The delay added to every reply from now on."""
        return float(self._delay.value)

    @delay_s.setter
    def delay_s(self, value: float) -> None:
        self._delay.value = value

    def __enter__(self) -> LatencyProxy:
        self._process.start()
        if not self._ready.wait(30):
            self._process.kill()
            raise AssertionError("latency proxy did not start")
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self._process.kill()
        self._process.join(10)


def _serve_forever(
    host: str,
    port: int,
    delay: Synchronized[float],
    bound: Synchronized[int],
    ready: multiprocessing.synchronize.Event,
) -> None:
    asyncio.run(_Proxy((host, port), delay).serve(bound, ready))


class _Proxy:
    def __init__(self, upstream: tuple[str, int], delay: Synchronized[float]) -> None:
        self._upstream = upstream
        self._delay = delay

    @property
    def delay_s(self) -> float:
        return float(self._delay.value)

    async def serve(
        self, bound: Synchronized[int], ready: multiprocessing.synchronize.Event
    ) -> None:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        bound.value = server.sockets[0].getsockname()[1]
        ready.set()
        async with server:
            await server.serve_forever()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*self._upstream)
        except OSError:
            client_w.close()
            return
        replies: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        tasks = [
            asyncio.ensure_future(self._forward(client_r, upstream_w)),
            asyncio.ensure_future(self._hold(upstream_r, replies)),
            asyncio.ensure_future(self._release(replies, client_w)),
        ]
        # Done when the client leaves or the last reply (upstream closed) is released.
        await asyncio.wait([tasks[0], tasks[2]], return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for writer in (client_w, upstream_w):
            writer.close()

    @staticmethod
    async def _forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()

    async def _hold(
        self, reader: asyncio.StreamReader, replies: asyncio.Queue[tuple[float, bytes]]
    ) -> None:
        """Stamp each reply with when it is due (the delay in force as it arrives)."""
        with contextlib.suppress(OSError):
            while chunk := await reader.read(65536):
                replies.put_nowait((time.monotonic() + self.delay_s, chunk))
        replies.put_nowait((time.monotonic() + self.delay_s, b""))

    @staticmethod
    async def _release(
        replies: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(OSError):
            while True:
                due, chunk = await replies.get()
                wait_s = due - time.monotonic()
                if wait_s > 0:
                    await asyncio.sleep(wait_s)
                if not chunk:
                    return
                writer.write(chunk)
                await writer.drain()
