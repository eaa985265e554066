"""A batch of simulated transactions as parallel numpy arrays, before any string is made.

Generators work on integer codes (user, merchant, country positions) because that keeps
every step vectorised; ids and decimal strings are rendered once, at the very end.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray

__all__ = ["NO_DEVICE", "TxColumns"]

#: Device code of a transaction without a device (card present, or merchant-initiated).
NO_DEVICE = -1


@dataclass(frozen=True, slots=True)
class TxColumns:
    """Parallel arrays, one entry per transaction; ``pattern`` 0 is legit, k is PATTERNS[k-1].

    The channel and currency are not stored: both follow from the merchant, which keeps
    the rows consistent by construction.
    """

    time_ms: NDArray[np.int64]
    user: NDArray[np.int64]
    card: NDArray[np.int64]
    merchant: NDArray[np.int64]
    amount_cents: NDArray[np.int64]
    country: NDArray[np.int64]
    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    device: NDArray[np.int64]
    pattern: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.time_ms.shape[0])

    @classmethod
    def empty(cls) -> TxColumns:
        """No rows: the live stream's carry-over before its first window."""
        codes, floats = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        return cls(codes, codes, codes, codes, codes, codes, floats, floats, codes, codes)

    @classmethod
    def concat(cls, parts: list[TxColumns]) -> TxColumns:
        """Join batches, e.g. the legit rows and every fraud episode."""
        return cls(
            **{
                column.name: np.concatenate([getattr(part, column.name) for part in parts])
                for column in fields(cls)
            }
        )

    def take(self, index: NDArray[np.int64]) -> TxColumns:
        """Select and reorder rows, e.g. to sort them or to drop some."""
        return TxColumns(
            **{column.name: getattr(self, column.name)[index] for column in fields(self)}
        )

    def sorted_by_time(self) -> TxColumns:
        """Order by event time; ties go by user, merchant and amount so the order is fixed."""
        order = np.lexsort((self.amount_cents, self.merchant, self.user, self.time_ms))
        return self.take(order.astype(np.int64))
