"""One database transaction that many statements share; nested ones are savepoints.

A failing node must leave nothing half-done for the nodes after it. Where the transaction
goes on after a failure (a ``db.transaction()`` block whose code catches the error, a scope
that commits what succeeded), each node's statements run inside a savepoint of their own, so
the failed node's work is undone and PostgreSQL's "current transaction is aborted" state never
leaks past it. Elsewhere a failed node marks the transaction broken: it can only roll back.
A ``timeout`` starts a watchdog that, at the deadline, interrupts the running statement and
rolls the transaction back.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dataflow.database.driver_errors import wrapped
from dataflow.errors import TransactionError, TransactionTimeoutError
from dataflow.models.types import Refused

if TYPE_CHECKING:
    from contextvars import ContextVar

    from sqlalchemy.engine import Engine

    from dataflow.config import DatabaseTarget
    from dataflow.database.change_feed import ChangeEvent, ChangeFeed
    from dataflow.database.locks import OwnerLock
    from dataflow.dialects import Dialect

log = logging.getLogger("dataflow.transactions")


class TransactionHost(Protocol):
    """What a transaction needs of the database it runs on (``Database`` is one)."""

    target: DatabaseTarget
    engine: Engine
    dialect: Dialect
    #: Held by the transaction from its first statement to its end, where the database has
    #: a single connection (an in-memory SQLite database).
    shared_lock: OwnerLock | None
    changes: ChangeFeed
    bound: ContextVar[Transaction | None]


#: The guide's names for the isolation levels and the SQL each stands for.
ISOLATION_LEVELS = {
    "READ_UNCOMMITTED": "READ UNCOMMITTED",
    "READ_COMMITTED": "READ COMMITTED",
    "REPEATABLE_READ": "REPEATABLE READ",
    "SERIALIZABLE": "SERIALIZABLE",
}

#: Seconds between interrupts while an expired transaction's statement is still running.
_POLL = 0.05


def isolation_level(value: Any) -> str | None:
    """``"READ_COMMITTED"`` (or ``"read committed"``) -> ``"READ COMMITTED"``; None stays None."""
    if value is None:
        return None
    key = (
        value.strip().upper().replace(" ", "_").replace("-", "_") if isinstance(value, str) else ""
    )
    if key not in ISOLATION_LEVELS:
        raise Refused(f"one of {', '.join(ISOLATION_LEVELS)} or None, got {value!r}")
    return ISOLATION_LEVELS[key]


def timeout_seconds(value: Any) -> float | None:
    """A positive, finite number of seconds, or None for no timeout."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise Refused(f"a positive number of seconds or None, got {value!r}")
    return float(value)


class Transaction:
    """A transaction on one database, or (with ``parent``) a savepoint inside one.

    ``savepoints`` gives each ``statement()`` block a savepoint, so the transaction survives a
    block that fails. ``timeout`` counts from now unless ``deadline`` (a ``time.monotonic()``
    instant) says when it runs out; ``xid`` makes it a two-phase transaction.
    """

    def __init__(
        self,
        database: TransactionHost,
        *,
        level: str | None = None,
        timeout: float | None = None,
        deadline: float | None = None,
        parent: Transaction | None = None,
        xid: str | None = None,
        savepoints: bool = True,
        label: str = "transaction",
    ) -> None:
        self.database = database
        self.label = label
        self.savepoints = savepoints
        self.timeout = timeout
        self.parent = parent
        self.xid = xid
        self.state = "open"  # then "committed", "rolled back", "prepared"
        #: Changes announced inside, told to listeners when the outermost transaction commits.
        self.changes: list[ChangeEvent] = []
        self.expired = False
        self.broken = False
        self._timer: threading.Timer | None = None
        if deadline is None and timeout is not None:
            deadline = time.monotonic() + timeout
        if deadline is not None and deadline <= time.monotonic():
            raise self._timeout_error()
        if parent is None:
            self.root: Transaction = self
            self.depth = 0
            self.level = level
            self._busy = threading.RLock()
            self._savepoint_names = 0
            self.conn, self._tx = self._open_root(level, xid)
        else:
            self.root = parent.root
            self.depth = parent.depth + 1
            self.level = self.root.level
            if level is not None and level != self.level:
                raise TransactionError(
                    f"{label}: isolation_level {level} cannot be set inside an open transaction "
                    f"(it runs at {self.level or 'the database default'}); set it on the "
                    "outermost transaction"
                )
            self._busy = parent._busy
            self.conn = parent.conn
            with self._busy:
                problem = parent._problem()
                if problem is not None:
                    raise problem
                with wrapped(label):
                    self._tx = self.conn.begin_nested()
        if deadline is not None:
            self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._expire)
            self._timer.daemon = True
            self._timer.start()

    def __repr__(self) -> str:
        return f"<Transaction {self.label} {self.state} depth={self.depth}>"

    @property
    def connection(self) -> Connection:
        """The SQLAlchemy connection, for Core statements of your own in this transaction."""
        return self.conn

    def _open_root(self, level: str | None, xid: str | None) -> tuple[Connection, Any]:
        db = self.database
        lock = db.shared_lock
        if lock is not None:
            lock.acquire(self)
        try:
            with wrapped(self.label):
                conn = db.engine.connect()
                try:
                    if level is not None and db.dialect.isolation_levels:
                        conn.execution_options(isolation_level=level)
                    tx = conn.begin_twophase(xid) if xid else conn.begin()
                    if xid:
                        db.dialect.hold_prepared(conn, xid)
                    # A scope may write: the database's write lock (where it has one) is taken
                    # now, so a later write cannot fail with SQLITE_BUSY mid-scope.
                    db.dialect.begin(conn, write=True)
                except BaseException:
                    conn.close()
                    raise
        except BaseException:
            if lock is not None:
                lock.release(self)
            raise
        return conn, tx

    # -- statements -----------------------------------------------------------------------

    @contextmanager
    def statement(self) -> Iterator[Connection]:
        """The connection for one node's statements (in a savepoint when ``savepoints``)."""
        with self._busy:
            problem = self._problem()
            if problem is not None:
                raise problem
            savepoint = self._savepoint() if self.savepoints else None
            announced = len(self.changes)
            try:
                yield self.conn
            except BaseException as exc:
                if savepoint is None:
                    self.broken = True
                else:
                    self._undo(savepoint)
                    del self.changes[announced:]
                problem = self._problem()
                if isinstance(problem, TransactionTimeoutError):
                    raise problem from exc
                raise
            problem = self._problem()
            if problem is not None:
                if savepoint is not None:
                    self._undo(savepoint)
                    del self.changes[announced:]
                raise problem
            if savepoint is not None:
                with wrapped(self.label):
                    self.conn.exec_driver_sql(f"RELEASE SAVEPOINT {savepoint}")

    # A node's savepoint is plain SQL (the same on every backend) rather than begin_nested():
    # SQLAlchemy's bookkeeping costs ten times the statements themselves on this hot path.
    def _savepoint(self) -> str:
        root = self.root
        root._savepoint_names += 1
        name = f"dataflow_{root._savepoint_names}"
        with wrapped(self.label):
            self.conn.exec_driver_sql(f"SAVEPOINT {name}")
        return name

    def _undo(self, savepoint: str) -> None:
        try:
            self.conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {savepoint}")
            self.conn.exec_driver_sql(f"RELEASE SAVEPOINT {savepoint}")
        except sa.exc.SQLAlchemyError:
            # The savepoint is gone (SQLite rolls the whole transaction back when a statement
            # is interrupted): nothing of the transaction can be trusted any more.
            log.debug("%s: rolling back to a savepoint failed", self.label, exc_info=True)
            self.root.broken = True

    def _problem(self) -> TransactionError | None:
        """Why this transaction (or one it is nested in) can take no more statements."""
        link: Transaction | None = self
        while link is not None:
            if link.expired:
                return link._timeout_error()
            if link.broken:
                return TransactionError(
                    f"{self.label}: a node failed inside the transaction and its work could not "
                    "be undone on its own, so the transaction can only roll back"
                )
            if link.state != "open":
                which = "transaction" if link is self else "enclosing transaction"
                return TransactionError(f"{self.label}: the {which} is already {link.state}")
            link = link.parent
        return None

    def _timeout_error(self) -> TransactionTimeoutError:
        limit = f" of {self.timeout:g} s" if self.timeout is not None else ""
        return TransactionTimeoutError(
            f"{self.label}: ran past its timeout{limit}; the transaction was rolled back"
        )

    # -- ending ---------------------------------------------------------------------------

    def prepare(self) -> None:
        """First phase of a two-phase commit: after this only commit or rollback remain."""
        self._finish(lambda: self._tx.prepare(), "prepared")

    def commit(self) -> None:
        self._finish(lambda: self._tx.commit(), "committed")

    def _finish(self, action: Callable[[], None], state: str) -> None:
        with self._busy:
            self._stop_watchdog()
            if self.state != "prepared":
                problem = self._problem()
                if problem is not None:
                    self._end()
                    raise problem
            try:
                with wrapped(self.label):
                    action()
            except BaseException:
                self._end()
                raise
            if state == "prepared":
                self.state = state  # the connection stays open for the second phase
                return
            self._close(state)
            if self.parent is not None:
                self.parent.changes.extend(self.changes)
            elif self.changes:
                self.database.changes.publish(self.changes)
            self.changes = []

    def rollback(self) -> None:
        with self._busy:
            self._stop_watchdog()
            if self.state in ("open", "prepared"):
                self._end()

    def _end(self) -> None:
        """Roll back whatever is left and release the connection; errors are only logged."""
        if self.state not in ("open", "prepared"):
            return
        try:
            if self._tx.is_active:
                self._tx.rollback()
        except sa.exc.SQLAlchemyError:
            log.warning("%s: rollback failed", self.label, exc_info=True)
        self._close("rolled back")

    def _close(self, state: str) -> None:
        self.state = state
        if state == "rolled back":
            self.changes = []
        if self.root is self:
            if self.xid:
                self.database.dialect.release_prepared(self.conn, self.xid)
            self.conn.close()
            if self.database.shared_lock is not None:
                self.database.shared_lock.release(self)

    # -- the watchdog ---------------------------------------------------------------------

    def _stop_watchdog(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        """At the deadline: roll back when idle, else interrupt the statement until it stops."""
        self.expired = True
        while self.state == "open":
            if self._busy.acquire(blocking=False):
                try:
                    if self.state == "open":
                        log.warning("%s: timeout reached; rolling back", self.label)
                        self._end()
                finally:
                    self._busy.release()
                return
            self._interrupt()
            time.sleep(_POLL)

    def _interrupt(self) -> None:
        try:
            self.database.dialect.interrupt(self.conn, self.database.engine)
        except Exception:  # the statement may end while we try; the next round sees that
            log.debug("%s: interrupting the statement failed", self.label, exc_info=True)
