"""The model registry: versioned, immutable, hash-verified model folders and their aliases.

One folder per version beside ``aliases.json`` (champion, challenger, history); every
alias change verifies the version's files first and is announced to the scorers as a
``ModelUpdate``. See :mod:`models.registry._registry` for the layout and guarantees.
"""

from models.registry._aliases import ALIASES_FILENAME, Aliases, AliasEvent, Role
from models.registry._registry import (
    ModelRegistry,
    Publisher,
    RegistryEntry,
    UnpublishedChangeError,
    VerifiedVersion,
)

__all__ = [
    "ALIASES_FILENAME",
    "AliasEvent",
    "Aliases",
    "ModelRegistry",
    "Publisher",
    "RegistryEntry",
    "Role",
    "UnpublishedChangeError",
    "VerifiedVersion",
]
