"""Approximate in-memory size of a state object, for the per-key memory budget.

Strings are counted as the pointer that refers to them, not as their bytes: merchant
and user ids are interned and shared by every state that mentions them, so charging the
string to each state would overstate the cost of one more key many times over.
"""

from __future__ import annotations

import sys
from array import array
from typing import Any

__all__ = ["deep_size"]

_ATOMS = (int, float, array, bytes)
#: The ints CPython preallocates once per process (shared by every state).
_SMALL_INTS = (-5, 256)


def deep_size(obj: Any) -> int:
    """``sys.getsizeof`` of ``obj`` and of everything it holds (strings: pointer only).

    Singletons cost nothing more: None, booleans and the small ints CPython caches.
    """
    if isinstance(obj, str) or obj is None or isinstance(obj, bool):
        return 0
    if isinstance(obj, int) and _SMALL_INTS[0] <= obj <= _SMALL_INTS[1]:
        return 0
    if isinstance(obj, _ATOMS):
        return sys.getsizeof(obj)
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        return size + sum(deep_size(k) + deep_size(v) for k, v in obj.items())
    if isinstance(obj, list | tuple | set | frozenset):
        return size + sum(deep_size(item) for item in obj)
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if hasattr(obj, name):
                size += deep_size(getattr(obj, name))
    return size
