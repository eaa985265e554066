"""Recently seen transaction ids, so a repeated delivery is not counted twice.

Kafka delivery is at-least-once and producers retry: the same ``tx_id`` can arrive again.
The dataflow asks :class:`RecentIds` before updating any window and skips a repeat. The
memory is bounded twice: by event time (an id is forgotten once the newest event time
recorded is more than ``ttl_ms`` past its own) and by count (at most ``max_size`` ids;
the earliest recorded goes first).

Every user holds one of these for a day, so it is kept small: an id is remembered as its
128-bit BLAKE2b digest next to its event time, 24 bytes a row in one ``array`` (no string
kept alive), found by a scan while the set is short and through a set of digests once it
is long. 128 bits make a false repeat impossible in practice, even for ids chosen to
collide (that would take ~2^64 tries); the digest does not depend on the process (unlike
``hash``), so a restored snapshot still recognises what it had seen.
"""

from __future__ import annotations

from array import array
from hashlib import blake2b
from typing import Any

from operators.exceptions import FeatureInputError
from operators.velocity._constants import DAY_MS

__all__ = ["RecentIds", "tx_digest"]

_SIZE = 16  # bytes of a digest
_ROW = 3  # array items a row: the digest (two of them), the event time
_ROW_BYTES = 8 * _ROW
#: Above this many ids a set of digests answers "seen?" instead of a scan.
_INDEX_AT = 64
#: Snapshot: ttl, max size, newest time (or None), the rows (bytes).
_State = tuple[int, int, int | None, bytes]


def tx_digest(tx_id: str) -> bytes:
    """The 16-byte digest an id is remembered by."""
    return blake2b(tx_id.encode(), digest_size=_SIZE).digest()


class RecentIds:
    """A bounded, time-limited set of transaction ids (in recording order)."""

    __slots__ = ("_index", "_max_size", "_newest", "_rows", "_ttl")

    def __init__(self, ttl_ms: int = DAY_MS, max_size: int = 10_000) -> None:
        if ttl_ms < 0 or max_size < 1:
            raise FeatureInputError(
                f"RecentIds needs ttl_ms >= 0 and max_size >= 1, got {ttl_ms}, {max_size}"
            )
        self._ttl = ttl_ms
        self._max_size = max_size
        self._rows = array("q")  # digest (16 bytes), event time; in recording order
        self._index: set[bytes] | None = None  # the digests, once there are many
        self._newest: int | None = None

    def __len__(self) -> int:
        return len(self._rows) // _ROW

    def seen(self, tx_id: str, event_ms: int) -> bool:
        """True if ``tx_id`` is remembered (a repeat); otherwise record it and say False."""
        digest = blake2b(tx_id.encode(), digest_size=_SIZE).digest()  # tx_digest, inlined
        index, rows, newest = self._index, self._rows, self._newest
        k = self._position(digest) if index is None or digest in index else -1
        if k >= 0:
            if newest is not None and rows[k + 2] >= newest - self._ttl:
                return True
            del rows[k : k + _ROW]  # expired but not yet dropped: record it afresh
        elif index is not None:
            index.add(digest)
        rows.frombytes(digest)
        rows.append(event_ms)
        if newest is None or event_ms > newest:
            self._newest = newest = event_ms
        count = len(rows) // _ROW
        if (
            count > self._max_size
            or rows[2] < newest - self._ttl
            or (index is None and count > _INDEX_AT)
        ):
            self._expire(newest - self._ttl)
        return False

    def is_idle(self, now_ms: int) -> bool:
        """True when every id has expired at ``now_ms``: the set can be dropped."""
        return self._newest is None or now_ms - self._newest > self._ttl

    def _position(self, digest: bytes) -> int:
        """The array index of the row holding ``digest``, or -1."""
        view = self._rows.tobytes()
        at = view.find(digest)
        while at % _ROW_BYTES and at >= 0:  # a match across two fields: look further
            at = view.find(digest, at + 1)
        return at // 8 if at >= 0 else -1

    def _expire(self, horizon: int) -> None:
        """Forget the earliest recorded while too many or older than ``horizon``; index."""
        rows = self._rows
        count = len(rows) // _ROW
        gone = 0
        while gone < count and (count - gone > self._max_size or rows[gone * _ROW + 2] < horizon):
            gone += 1
        index = self._index
        if gone:
            if index is not None:
                index.difference_update(self._digests(rows[: gone * _ROW]))
            del rows[: gone * _ROW]
            count -= gone
        if index is None and count > _INDEX_AT:
            self._index = set(self._digests(rows))
        elif index is not None and count <= _INDEX_AT // 2:
            self._index = None

    @staticmethod
    def _digests(rows: array[int]) -> list[bytes]:
        view = rows.tobytes()
        return [view[at : at + _SIZE] for at in range(0, len(view), _ROW_BYTES)]

    def __getstate__(self) -> _State:
        return self._ttl, self._max_size, self._newest, self._rows.tobytes()

    def __setstate__(self, state: Any) -> None:
        self._rows = array("q")
        if state[0] is None:  # written before ids were digests: (None, slots)
            slots = state[1]
            self._ttl, self._max_size, self._newest = (
                slots["_ttl"], slots["_max_size"], slots["_newest"],
            )  # fmt: skip
            for tx_id, event_ms in slots["_ids"].items():
                self._rows.frombytes(tx_digest(tx_id))
                self._rows.append(event_ms)
        else:
            self._ttl, self._max_size, self._newest, rows = state
            self._rows.frombytes(rows)
        count = len(self._rows) // _ROW
        self._index = set(self._digests(self._rows)) if count > _INDEX_AT else None
