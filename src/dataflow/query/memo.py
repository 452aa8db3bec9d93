"""Checked filters and sorts by value, so a workflow that runs again does not check them again.

Checks run on every run (a value may come from a connection); compiling the same filter
each time would cost more than the query itself on a fast backend.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Generic, TypeVar

from dataflow.models.types import MAX_DEPTH

T = TypeVar("T")
_SCALARS = (str, int, float, bool, decimal.Decimal, dt.date, dt.time, type(None))


def freeze(value: Any, depth: int = 0) -> Hashable | None:
    """A hashable stand-in that tells apart values the checks could tell apart, else None.

    Types are part of it, so ``1``, ``1.0`` and ``True`` differ. A value nested deeper than
    any check accepts gets None, so the check sees it (and refuses it).
    """
    if isinstance(value, _SCALARS):
        return (type(value), value)
    if depth >= MAX_DEPTH:
        return None
    if isinstance(value, Mapping):
        items = []
        for key, item in value.items():
            frozen = freeze(item, depth + 1)
            if frozen is None or not isinstance(key, str):
                return None
            items.append((key, frozen))
        return (dict, tuple(items))
    if isinstance(value, list | tuple):
        frozen_items = tuple(freeze(item, depth + 1) for item in value)
        return None if None in frozen_items else (list, frozen_items)
    return None


class Memo(Generic[T]):
    """``compile(value)``, remembered for up to ``size`` distinct values; errors are not."""

    def __init__(self, compile: Callable[[Any], T], size: int = 256) -> None:
        self.compile = compile
        self.size = size
        self.found: dict[Hashable, T] = {}

    def __call__(self, value: Any) -> T:
        key = freeze(value)
        if key is None:
            return self.compile(value)
        found = self.found.get(key)
        if found is None:
            found = self.compile(value)
            if len(self.found) >= self.size:
                self.found.clear()
            self.found[key] = found
        return found
