"""Hot reload of a rules file without restarting the dataflow, and without ever going blind.

The scoring loop calls :meth:`ReloadingRules.get` once per batch. At most every
``check_interval_ms`` it does one ``os.stat``; only when the file's identity (mtime, size,
inode) changed does it read and compile the file. A bad edit keeps the previous rules,
logs ``rules_reload_failed`` and is remembered (``last_error``, ``failed_reloads``) for the
metrics and the status view, so a typo in production never disables fraud rules.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from operators.exceptions import RuleError
from operators.rules._ruleset import RuleSet, read_rules_text
from operators.rules._schema import DEFAULT_SCHEMA, ColumnSchema

__all__ = ["ReloadingRules"]

_log = structlog.get_logger()

_Signature = tuple[int, int, int] | None  # (mtime_ns, size, inode); None when missing


class ReloadingRules:
    """A rules file kept live: ``get()`` returns the newest rules that compiled.

    The initial load must succeed (a service should not start without its rules); after
    that, failures only keep the previous rules. ``clock`` is injectable for tests.
    Not thread-safe by design: each dataflow worker owns its own instance.
    """

    def __init__(
        self,
        path: str | Path,
        schema: ColumnSchema = DEFAULT_SCHEMA,
        *,
        check_interval_ms: float = 1000.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if check_interval_ms < 0:
            raise RuleError(f"check_interval_ms must be >= 0, got {check_interval_ms}")
        self.path = Path(path)
        self.schema = schema
        self._interval = check_interval_ms / 1000.0
        self._clock = clock
        self._signature = self._stat()
        self._rules = RuleSet.from_file(self.path, schema)
        self._last_check = clock()
        #: Why the latest changed version of the file was refused; None once it is fixed.
        self.last_error: str | None = None
        #: Changed versions of the file that were refused (a counter for metrics).
        self.failed_reloads = 0
        #: Successful reloads since start-up.
        self.reloads = 0

    @property
    def rules(self) -> RuleSet:
        """The rules in force, without checking the file."""
        return self._rules

    def get(self) -> RuleSet:
        """Return the rules in force, after a cheap check for a changed file if one is due."""
        now = self._clock()
        if now - self._last_check >= self._interval:
            self._last_check = now
            self.check_now()
        return self._rules

    def check_now(self) -> bool:
        """Stat the file now and reload it if it changed; True if new rules were loaded."""
        signature = self._stat()
        if signature == self._signature:
            return False
        # Remember the signature first: a failed version is reported once, not every poll,
        # and a write racing this read shows up as another change on the next check.
        self._signature = signature
        try:
            text = read_rules_text(self.path)
            if hashlib.sha256(text.encode("utf-8")).hexdigest() == self._rules.fingerprint:
                self.last_error = None  # rewritten with the same content (or reverted)
                return False
            rules = RuleSet.from_yaml(text, self.schema, source=str(self.path))
        except RuleError as exc:
            self.last_error = str(exc)
            self.failed_reloads += 1
            _log.warning(
                "rules_reload_failed",
                path=str(self.path),
                error=self.last_error,
                kept_fingerprint=self._rules.fingerprint[:12],
                kept_rules=len(self._rules),
            )
            return False
        self._rules = rules
        self.last_error = None
        self.reloads += 1
        _log.info(
            "rules_reloaded",
            path=str(self.path),
            fingerprint=rules.fingerprint[:12],
            rules=len(rules),
        )
        return True

    def _stat(self) -> _Signature:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None  # read_rules_text reports why when we try to load it
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)
