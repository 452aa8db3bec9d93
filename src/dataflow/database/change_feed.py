"""Change notifications: what each committed write did, for whoever listens (Nexus's WebSocket).

A write node announces its change when it finishes. Outside a transaction its work has
committed by then, and the change goes out at once; inside one (a ``TransactionScopeNode``, a
``db.transaction()`` block, a saga step) it waits for the commit, and a rollback drops it. So a
listener only ever hears of rows that exist. Listeners are called on the writing thread and
must not block; nothing is kept for a listener that was not there, and nothing crosses
processes.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dataflow.models.types import utcnow

log = logging.getLogger("dataflow.changes")

Listener = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One write: its model, action, the ids it knows, how many rows, for which tenant."""

    model: str
    #: create, update, delete, soft_delete, restore, upsert, or bulk_<one of those>
    action: str
    count: int
    ids: Sequence[Any] | None = None
    tenant_id: str | None = None
    at: dt.datetime = field(default_factory=utcnow)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "action": self.action,
            "ids": None if self.ids is None else list(self.ids),
            "count": self.count,
            "tenant_id": self.tenant_id,
            "at": self.at.isoformat(),
        }


class ChangeFeed:
    """The listeners of one database's changes."""

    def __init__(self) -> None:
        self._listeners: tuple[Listener, ...] = ()
        self._lock = threading.Lock()

    @property
    def listening(self) -> bool:
        return bool(self._listeners)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with each committed change (a dict); returns the unsubscribe."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

        def unsubscribe() -> None:
            with self._lock:
                self._listeners = tuple(x for x in self._listeners if x is not listener)

        return unsubscribe

    def publish(self, events: Iterable[ChangeEvent]) -> None:
        listeners = self._listeners
        for event in events:
            message = event.as_dict()
            for listener in listeners:
                try:
                    listener(message)
                except Exception:  # one listener's failure is not the writer's
                    log.exception("a change listener failed")
