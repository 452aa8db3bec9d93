"""A lock held by an owner: a thread, or a transaction that may end on another thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class OwnerLock:
    """A lock held by an owner: a thread, or a transaction that may end on another thread.

    Re-entrant for its owner. The in-memory database's one connection is guarded by it: a
    workflow run's transaction holds it from its first statement to the end of the run, and
    the async runtime may run those on different threads.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._owner: object = None
        self._depth = 0

    def acquire(self, owner: object) -> None:
        with self._changed:
            while self._owner is not None and self._owner != owner:
                self._changed.wait()
            self._owner = owner
            self._depth += 1

    def release(self, owner: object) -> None:
        with self._changed:
            if self._owner != owner:
                raise RuntimeError(f"{owner!r} does not hold the lock")
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._changed.notify()

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the calling thread during the block."""
        me = threading.get_ident()
        self.acquire(me)
        try:
            yield
        finally:
            self.release(me)
