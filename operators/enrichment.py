"""What the enrichment store adds to a batch, independent of where it comes from (Redis)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from operators.exceptions import BatchError
from operators.merchant_labels import MERCHANT_LABEL_FEATURES, merchant_label_values

__all__ = ["Enrichment"]

_NO_LABELS = np.array(merchant_label_values(None, 0), dtype=np.float64)


def _no_labels(size: int) -> NDArray[np.float64]:
    """Rows of a merchant without labels (counts 0, the rest NaN)."""
    return np.tile(_NO_LABELS, (size, 1))


@dataclass(frozen=True)
class Enrichment:
    """Row-aligned lookups for a batch; ``degraded_cause`` is set when they are missing.

    ``merchant_labels`` holds the ``MERCHANT_LABEL_FEATURES`` of each row, shape
    ``(n, 12)``; left out (or given with no rows) it is filled as for merchants without
    labels, so code written before it existed keeps constructing enrichments as it did.
    """

    merchant_risk: NDArray[np.float64]  # NaN when unknown
    allow: NDArray[np.bool_]
    deny: NDArray[np.bool_]
    degraded_cause: str | None = None
    merchant_labels: NDArray[np.float64] = field(default_factory=lambda: _no_labels(0))

    def __post_init__(self) -> None:
        """Fill ``merchant_labels`` when left out; refuse one of the wrong shape."""
        size = len(self.merchant_risk)
        shape = (size, len(MERCHANT_LABEL_FEATURES))
        if self.merchant_labels.shape == shape:
            return
        if self.merchant_labels.shape[0] != 0:
            raise BatchError(
                f"merchant_labels has shape {self.merchant_labels.shape}, expected {shape}"
            )
        object.__setattr__(self, "merchant_labels", _no_labels(size))

    @classmethod
    def empty(cls, size: int, cause: str | None = None) -> Enrichment:
        """No enrichment: what a batch gets without Redis (cause None: none was asked)."""
        return cls(
            merchant_risk=np.full(size, np.nan),
            allow=np.zeros(size, dtype=bool),
            deny=np.zeros(size, dtype=bool),
            degraded_cause=cause,
            merchant_labels=_no_labels(size),
        )
