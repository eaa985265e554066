"""What the enrichment store adds to a batch, independent of where it comes from (Redis)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["Enrichment"]


@dataclass(frozen=True)
class Enrichment:
    """Row-aligned lookups for a batch; ``degraded_cause`` is set when they are missing."""

    merchant_risk: NDArray[np.float64]  # NaN when unknown
    allow: NDArray[np.bool_]
    deny: NDArray[np.bool_]
    degraded_cause: str | None = None

    @classmethod
    def empty(cls, size: int, cause: str | None = None) -> Enrichment:
        """No enrichment: what a batch gets without Redis (cause None: none was asked)."""
        return cls(
            merchant_risk=np.full(size, np.nan),
            allow=np.zeros(size, dtype=bool),
            deny=np.zeros(size, dtype=bool),
            degraded_cause=cause,
        )
