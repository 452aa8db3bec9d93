"""``with db.transaction():`` — a block of DataFlow work as one transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from dataflow.database.scope import find_transaction
from dataflow.database.transaction import Transaction, isolation_level, timeout_seconds
from dataflow.errors import ConfigurationError
from dataflow.models.types import Refused

if TYPE_CHECKING:
    from dataflow.store import Store


@contextmanager
def transaction_block(
    store: Store, level: Any = None, timeout: Any = None
) -> Iterator[Transaction]:
    """``with db.transaction():`` — the block's DataFlow work on the store is one transaction.

    Inside another transaction on its database the block is a savepoint: an error rolls back the
    block's work only, and the enclosing transaction decides whether the rest commits.
    """
    try:
        level = isolation_level(level)
    except Refused as exc:
        raise ConfigurationError(f"db.transaction(): isolation_level expects {exc}") from None
    try:
        timeout = timeout_seconds(timeout)
    except Refused as exc:
        raise ConfigurationError(f"db.transaction(): timeout expects {exc}") from None
    store.create_pending_tables()  # schema changes never run inside the user's transaction
    database = store.database
    tx = Transaction(
        database,
        level=level,
        timeout=timeout,
        parent=find_transaction(database),
        label="db.transaction()",
    )
    token = database.bound.set(tx)
    try:
        yield tx
    except BaseException:
        tx.rollback()
        raise
    else:
        tx.commit()
    finally:
        database.bound.reset(token)
