"""A bulk write the database rolled back: run it again, or say why not; and cleaning up
after a failure without hiding it.

PostgreSQL and MariaDB break a deadlock by rolling one transaction back. A bulk call that owns
its transaction runs again a few times (its counts and progress wound back to where it
began); inside a caller's transaction, or fed by a stream, it cannot, and says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from dataflow.database.scope import find_transaction, open_scope
from dataflow.errors import DeadlockError

if TYPE_CHECKING:
    from dataflow.bulk.batches import Progress
    from dataflow.database.transaction import TransactionHost


class Outcome(Protocol):
    """The counts of a bulk call (``bulk.run.Outcome``) that a rerun winds back."""

    processed: int
    inserted: int
    updated: int
    skipped: int
    failed: list[dict[str, Any]]
    ids: list[Any] | None


#: How many more times a call that owns its transaction runs after the database rolled it
#: back to break a deadlock, and the longest first pause (seconds; it doubles each time).
RETRIES = 8
BACKOFF = 0.01

log = logging.getLogger("dataflow.bulk")


def deadlock_error(
    label: str, owned: bool, replayable: bool, tries: int, batch: tuple[int, int] | None
) -> DeadlockError:
    """Why a bulk write the database rolled back to break a deadlock is not written."""
    what = (
        "all of it"
        if batch is None
        else f"rows {batch[0]} to {batch[0] + batch[1] - 1} (earlier batches are committed)"
    )
    head = (
        f"{label}: the database rolled back this bulk write to break a deadlock or "
        "serialization conflict with a concurrent transaction"
    )
    if not owned:
        return DeadlockError(
            f"{head}. It ran inside an enclosing transaction, which DataFlow cannot run again "
            "(MySQL and MariaDB have already rolled all of it back): roll back and retry the "
            "whole transaction, and let concurrent transactions write shared rows in the same "
            "order"
        )
    if not replayable:
        return DeadlockError(
            f"{head}; nothing was written. Its rows came from a stream, which cannot be read "
            "again: retry the call, or pass the rows as a list to let DataFlow retry it"
        )
    return DeadlockError(
        f"{head}, {tries} times; {what} not written. Retry the call later, or write rows "
        "sharing keys from fewer concurrent callers"
    )


@contextmanager
def savepoint(conn: Connection) -> Iterator[None]:
    """A savepoint as plain SQL: SQLAlchemy's ``begin_nested()`` costs far more in Python."""
    conn.exec_driver_sql("SAVEPOINT dataflow_bulk")
    try:
        yield
    except BaseException:
        # When the savepoint is gone with its transaction (MySQL rolls all of it back to break
        # a deadlock; a killed connection), the error that ended it is the one to report.
        quietly(conn.exec_driver_sql, "ROLLBACK TO SAVEPOINT dataflow_bulk")
        raise
    conn.exec_driver_sql("RELEASE SAVEPOINT dataflow_bulk")


def quietly(cleanup: Callable[..., Any], *args: Any) -> None:
    """Run ``cleanup`` after an error, never letting its own failure replace that error."""
    try:
        cleanup(*args)
    except sa_exc.SQLAlchemyError:
        log.debug("cleanup after a failed bulk write failed", exc_info=True)


def owns_transaction(database: TransactionHost) -> bool:
    """Whether a statement on ``database`` would begin a transaction rather than join one."""
    return find_transaction(database, create=False) is None and open_scope() is None


@dataclass(frozen=True, slots=True)
class Mark:
    """An outcome's counts (and progress) before a write, to go back to if it is run again."""

    counts: tuple[int, int, int, int]
    failed: int
    ids: int
    done: int

    @classmethod
    def of(cls, outcome: Outcome, progress: Progress | None) -> Mark:
        return cls(
            (outcome.processed, outcome.inserted, outcome.updated, outcome.skipped),
            len(outcome.failed),
            0 if outcome.ids is None else len(outcome.ids),
            0 if progress is None else progress.done,
        )

    def restore(self, outcome: Outcome, progress: Progress | None) -> None:
        outcome.processed, outcome.inserted, outcome.updated, outcome.skipped = self.counts
        del outcome.failed[self.failed :]
        if outcome.ids is not None:
            del outcome.ids[self.ids :]
        if progress is not None:
            progress.rewind(self.done)
