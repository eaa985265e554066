"""Which names a rule may use, and whether each is a number or a string.

The engine type-checks every expression against this schema when a rules file is
loaded, so a typo or a string-versus-number comparison is refused at load time instead
of silently never firing in production.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass

from operators.exceptions import RuleError
from operators.features import FEATURE_NAMES

__all__ = ["DEFAULT_SCHEMA", "ColumnSchema"]

# Transaction fields a rule may look at besides the features (tx_id is an idempotency
# key, not a signal, so it is deliberately absent).
_NUMERIC_FIELDS = ("lat", "lon")
_STRING_FIELDS = (
    "user_id",
    "card_id",
    "merchant_id",
    "mcc",
    "currency",
    "country",
    "channel",
    "device_id",
)


@dataclass(frozen=True, slots=True)
class ColumnSchema:
    """The names rules may use: numeric columns (float64) and string columns (str/None).

    Kept separate from the rules so the same engine serves the live dataflow and a
    backtest over a file with extra columns: the caller says what the batch holds.
    """

    numeric: frozenset[str]
    strings: frozenset[str]

    def __post_init__(self) -> None:
        both = self.numeric & self.strings
        if both:
            raise RuleError(f"schema: columns declared both numeric and string: {sorted(both)}")
        bad = sorted(
            name
            for name in self.numeric | self.strings
            if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("__")
        )
        if bad:
            raise RuleError(f"schema: column names must be plain identifiers, got {bad}")

    @classmethod
    def of(
        cls, numeric: tuple[str, ...] | list[str], strings: tuple[str, ...] | list[str]
    ) -> ColumnSchema:
        """Build a schema from plain sequences, the common case in tests and backtests."""
        return cls(numeric=frozenset(numeric), strings=frozenset(strings))

    @property
    def names(self) -> frozenset[str]:
        """Every name a rule may use."""
        return self.numeric | self.strings


#: The agreed features plus the transaction fields, as the live dataflow provides them.
DEFAULT_SCHEMA = ColumnSchema.of(
    numeric=[*FEATURE_NAMES, *_NUMERIC_FIELDS], strings=list(_STRING_FIELDS)
)
