"""Live traffic from a background thread, for tests that disturb a system while it is fed.

The traffic must keep flowing while the test's own thread kills a server or waits for
decisions, and an error while sending must fail the test in the test's thread. A
:class:`Traffic` subclass says only what to send (:meth:`Traffic.send_all`, pacing with
:meth:`Traffic.paced`) and what a clean finish means (:meth:`Traffic.check`); starting,
stopping early when the test fails, joining and reporting are done here once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Self, TypeVar

from streams.producing import Pacer

__all__ = ["Traffic"]

T = TypeVar("T")


class _HaltedError(Exception):
    """The test failed: stop sending at once, without flushing."""


class Traffic(threading.Thread):
    """A daemon thread running :meth:`send_all`; use it as a context manager."""

    def __init__(self, name: str, *, join_timeout_s: float = 120) -> None:
        super().__init__(name=name, daemon=True)
        self._halt = threading.Event()
        self._join_timeout_s = join_timeout_s
        self.error: BaseException | None = None

    def send_all(self) -> None:
        """Send everything (in the thread); subclasses implement it."""
        raise NotImplementedError

    def check(self) -> None:
        """Assertions about a clean finish (every record acknowledged, say)."""

    def paced(self, items: Iterable[T], rate: float) -> Iterator[T]:
        """``items`` at ``rate`` a second, open loop; ends the thread if the test failed."""
        pacer = Pacer(rate)
        for item in items:
            while pacer.due() == 0:
                pacer.wait()
            if self._halt.is_set():
                raise _HaltedError
            pacer.sent += 1
            yield item

    def run(self) -> None:
        try:
            self.send_all()
        except _HaltedError:
            return
        except BaseException as exc:  # reported by __exit__, in the test's thread
            self.error = exc

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        type_: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        if type_ is not None:  # the test failed: stop sending, do not wait for the rest
            self._halt.set()
        self.join(timeout=self._join_timeout_s)
        if type_ is None:
            assert not self.is_alive(), f"{self.name} did not finish"
            assert self.error is None, repr(self.error)
            self.check()
