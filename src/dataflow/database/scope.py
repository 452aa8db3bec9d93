"""Where a statement finds the transaction it belongs to.

Three things can put statements into a transaction: a ``with db.transaction():`` block
(``Database.bound``), a ``TransactionScopeNode`` (a scope kept on the workflow run, so that
nodes the async runtime runs on other threads see it) and a saga or two-phase-commit step (a
scope in a context variable, seen by the workflows the step runs). When several apply, the
innermost — the most deeply nested — wins.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from dataflow.database.transaction import Transaction, TransactionHost
from dataflow.errors import TransactionError, TransactionTimeoutError
from kailash.runtime.context import RunContext, current_run

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType


#: The key of a run's scope in ``RunContext.resources``.
RUN_SCOPE = "dataflow.transaction_scope"

_step_scope: ContextVar[TransactionScope | None] = ContextVar("dataflow_step_scope", default=None)


class TransactionScope:
    """One transaction per database, begun when a statement first needs it; all end together.

    ``timeout`` counts from now unless ``deadline`` (a ``time.monotonic()`` instant) is given.
    ``savepoints`` lets each transaction go on after a failed node (see ``Transaction``).
    ``xid`` names each database's transaction (in the order they begin) to make them
    two-phase transactions. With ``within``, each transaction is a savepoint of that scope's.
    """

    def __init__(
        self,
        *,
        level: str | None = None,
        timeout: float | None = None,
        deadline: float | None = None,
        rollback_on_error: bool = True,
        savepoints: bool = False,
        label: str = "transaction scope",
        xid: Callable[[int], str] | None = None,
        within: TransactionScope | None = None,
    ) -> None:
        self.level = level
        self.timeout = timeout
        if deadline is None and timeout is not None:
            deadline = time.monotonic() + timeout
        self.deadline = deadline
        self.rollback_on_error = rollback_on_error
        self.savepoints = savepoints
        self.label = label
        self.xid = xid
        self.within = within
        self.transactions: dict[TransactionHost, Transaction] = {}
        self.ended = False

    def transaction_for(
        self, database: TransactionHost, parent: Transaction | None, create: bool = True
    ) -> Transaction | None:
        """This scope's transaction on ``database``, begun (inside ``parent``) if need be."""
        found = self.transactions.get(database)
        if found is not None or not create:
            return found
        if self.within is not None:
            parent = self.within.transaction_for(database, parent)
        if self.ended:
            raise TransactionError(f"{self.label} has already ended")
        if self.deadline is not None and self.deadline <= time.monotonic():
            raise TransactionTimeoutError(
                f"{self.label}: ran past its timeout of {self.timeout:g} s before reaching the "
                "database; nothing was written"
            )
        found = Transaction(
            database,
            level=self.level,
            timeout=self.timeout,
            deadline=self.deadline,
            parent=parent,
            xid=self.xid(len(self.transactions)) if self.xid else None,
            savepoints=self.savepoints,
            label=self.label,
        )
        self.transactions[database] = found
        return found

    def commit(self, last: TransactionHost | None = None) -> None:
        """Commit each database's transaction (``last``'s at the end); stop at the first failure.

        Across databases this is one commit after another: a failure rolls back the ones not
        yet committed, not those already committed. Two-phase commit is the atomic way.
        """
        self.ended = True
        order = [tx for db, tx in self.transactions.items() if db is not last]
        if last is not None and last in self.transactions:
            order.append(self.transactions[last])
        for i, tx in enumerate(order):
            try:
                tx.commit()
            except BaseException:
                for rest in order[i + 1 :]:
                    rest.rollback()
                raise

    def rollback(self) -> None:
        self.ended = True
        for tx in reversed(list(self.transactions.values())):
            tx.rollback()

    def end(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        """End with the run: commit, or roll back on error (unless ``rollback_on_error`` is off)."""
        expired = any(tx.expired for tx in self.transactions.values())
        if exc is not None and (self.rollback_on_error or expired):
            self.rollback()
        else:
            self.commit()
        return False


def find_transaction(database: TransactionHost, create: bool = True) -> Transaction | None:
    """The innermost transaction a statement on ``database`` belongs to, if any.

    With ``create`` false a scope that has not reached ``database`` yet does not begin a
    transaction on it.
    """
    found = database.bound.get()
    scope = _step_scope.get()
    if scope is not None:
        found = _deeper(found, scope.transaction_for(database, found, create))
    run = current_run()
    if run is not None:
        for scope in reversed(_run_scopes(run)):  # outermost first: inner ones nest in them
            found = _deeper(found, scope.transaction_for(database, found, create))
    return found


def _run_scopes(run: RunContext | None) -> list[TransactionScope]:
    """The scopes of ``run`` and of the runs that started it (a workflow a node runs)."""
    scopes = []
    while run is not None:
        scope = run.resources.get(RUN_SCOPE)
        if scope is not None:
            scopes.append(scope)
        run = run.parent
    return scopes


def _deeper(a: Transaction | None, b: Transaction | None) -> Transaction | None:
    if a is None:
        return b
    if b is None:
        return a
    return b if b.depth > a.depth else a


def open_scope() -> str | None:
    """The label of a scope that would draw statements into it (run or step scope), if any."""
    scope = _step_scope.get()
    if scope is None:
        scope = next(iter(_run_scopes(current_run())), None)
    return scope.label if scope is not None else None


@contextmanager
def step_scope(scope: TransactionScope) -> Iterator[TransactionScope]:
    """Make ``scope`` the transaction of every DataFlow statement run inside the block."""
    token = _step_scope.set(scope)
    try:
        yield scope
    finally:
        _step_scope.reset(token)
