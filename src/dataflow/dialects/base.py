"""Dialect: what differs between the databases DataFlow runs on, in one class per backend.

SQLAlchemy builds and compiles the statements; a ``Dialect`` holds only what DataFlow itself
does differently per backend: how connections start and transactions begin, how rows load in
bulk, which SQL features exist (partial indexes, upsert with RETURNING, row-level security),
how strings compare and NULLs sort, how two-phase commits and cross-process claims work, and
the column types. Other code asks these questions and never branches on a backend's name.
"""

from __future__ import annotations

import decimal
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine import Dialect as SADialect

from dataflow.dialects.bulk import BulkLoader
from dataflow.errors import TransactionError


class Claim:
    """A held (or refused) claim; ``finished()`` says the claimed work reached its end."""

    def __init__(self, acquired: bool) -> None:
        self.acquired = acquired
        self.done = False

    def __bool__(self) -> bool:
        return self.acquired

    def finished(self) -> None:
        self.done = True


class Dialect(ABC):
    """The defaults, which the server backends share; each backend overrides what differs."""

    #: SQLAlchemy's name for the backend.
    name: ClassVar[str] = ""
    #: Its name for people, in messages.
    title: ClassVar[str] = ""
    #: The URL schemes that mean this backend, and the SQLAlchemy driver DataFlow uses for it.
    schemes: ClassVar[tuple[str, ...]] = ()
    driver_name: ClassVar[str] = ""
    #: The database is a file (or memory) of this process, not a server.
    embedded: ClassVar[bool] = False
    #: The DBAPI driver module it needs, and the extra of this distribution that installs it.
    driver_module: ClassVar[str | None] = None
    driver_extra: ClassVar[str | None] = None
    #: The port a URL without one means.
    default_port: ClassVar[int | None] = None

    # -- schema -------------------------------------------------------------------------
    #: Unique indexes can be partial (``... WHERE deleted_at IS NULL``).
    partial_indexes: ClassVar[bool] = False
    #: Tables are altered by copying them (Alembic's batch mode) rather than ALTER TABLE.
    alters_by_copy: ClassVar[bool] = False
    #: Tenant tables are kept behind row-level security policies.
    row_security: ClassVar[bool] = False

    # -- statements and transactions ----------------------------------------------------
    #: ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` works in one statement.
    upsert_returning: ClassVar[bool] = True
    #: Lists read rows straight off the driver's cursor (see ``statements.results``).
    rows_from_cursor: ClassVar[bool] = False
    #: One writer at a time: writers of a process queue on a lock, and a write transaction
    #: takes the database's write lock when it begins.
    one_writer: ClassVar[bool] = False
    #: Transactions take the isolation level asked for (else the database has one level).
    isolation_levels: ClassVar[bool] = True
    #: Transactions can be prepared and finished later, by another session (two-phase commit).
    two_phase: ClassVar[bool] = False

    #: Significant digits a Decimal keeps, where fewer than its declared precision.
    decimal_significant: ClassVar[int | None] = None

    # -- filters and sorts --------------------------------------------------------------
    #: What a translated ``$regex`` starts with (flags) and how it says "end of text".
    regex_flags: ClassVar[str] = ""
    regex_end: ClassVar[str] = "$"
    #: Case-sensitive LIKE is spelled GLOB (LIKE ignores case).
    like_by_glob: ClassVar[bool] = False
    #: NULL sorts as the largest value (others sort it as the smallest).
    nulls_sort_high: ClassVar[bool] = False

    def __repr__(self) -> str:
        return f"<Dialect {self.name}>"

    # -- connections --------------------------------------------------------------------

    def engine_options(self, memory: bool, pool: dict[str, Any]) -> dict[str, Any]:
        """``create_engine`` options besides the URL and ``echo``."""
        return pool

    def prepare_engine(self, engine: Engine, memory: bool) -> None:
        """Set up each new connection of ``engine`` (functions, pragmas)."""
        return None  # nothing to do unless a backend says otherwise

    def begin(self, conn: Connection, write: bool) -> None:
        """Run right after SQLAlchemy began a transaction on ``conn``."""
        return None  # nothing to do unless a backend says otherwise

    @abstractmethod
    def interrupt(self, conn: Connection, engine: Engine) -> None:
        """Stop the statement running on ``conn`` (called from another thread)."""

    # -- statements ---------------------------------------------------------------------

    def insert(self, table: sa.Table) -> Any:
        """An INSERT with the backend's ON CONFLICT / ON DUPLICATE KEY clauses."""
        return sa.insert(table)

    def conflicted(self, error: BaseException) -> bool:
        """Whether ``error`` is the database breaking a deadlock or a serialization conflict
        by rolling the transaction back (running it again can succeed)."""
        return False

    def policy_refused(self, error: BaseException) -> bool:
        """Whether ``error`` is a row-level security policy refusing a row a statement met
        (an upsert meeting another tenant's row)."""
        return False

    def bulk_loader(self, dialect: SADialect, kinds: dict[str, str]) -> BulkLoader:
        """The loader of many rows into one model's table; ``kinds`` are its field kinds."""
        return BulkLoader(dialect, kinds)

    def fold(self, expr: Any) -> sa.ColumnElement[Any]:
        """``expr`` lower-cased character by character, for case-insensitive matching."""
        return sa.func.lower(expr)

    def regex_match(self, expr: sa.ColumnElement[Any], pattern: str) -> sa.ColumnElement[bool]:
        """Whether ``pattern`` (rendered for this backend) is found in ``expr``."""
        return expr.regexp_match(pattern)

    def checked_arithmetic(
        self, expr: sa.ColumnElement[Any], column: sa.Column[Any]
    ) -> sa.ColumnElement[Any]:
        """``expr``, the new value of ``column`` from ``$inc``/``$multiply``, refused when it
        leaves the column's range (the servers refuse it themselves)."""
        return expr

    def decimal_sum(self, expr: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """The exact sum of a Decimal column."""
        return sa.func.sum(expr)

    # -- column types -------------------------------------------------------------------

    def text_type(self, dialect: SADialect) -> sa.types.TypeEngine[Any]:
        """Text compared by code point, trailing spaces significant."""
        return dialect.type_descriptor(sa.Text())

    def datetime_type(self, dialect: SADialect) -> sa.types.TypeEngine[Any]:
        """A datetime without zone, to the microsecond."""
        return dialect.type_descriptor(sa.DateTime())

    def datetime_reader(self) -> Callable[[Any], Any] | None:
        """A fast reader of stored datetimes as aware UTC, or None for the generic one."""
        return None

    def decimal_type(self, dialect: SADialect) -> sa.types.TypeEngine[Any]:
        return dialect.type_descriptor(sa.Numeric())

    def decimal_bind(self, value: decimal.Decimal) -> Any:
        """A Decimal as the driver stores it."""
        return value

    # -- two-phase commit ---------------------------------------------------------------

    def cannot_prepare(self, conn: Connection) -> str | None:
        """Why this server cannot keep a prepared transaction for recovery, if it cannot."""
        return f"{self.name}, which has no prepared transactions"

    def hold_prepared(self, conn: Connection, xid: str) -> None:
        """Mark ``xid`` as held by this session, for as long as the session lives."""
        return None  # nothing to do unless a backend says otherwise

    def release_prepared(self, conn: Connection, xid: str) -> None:
        """Undo ``hold_prepared``."""
        return None  # nothing to do unless a backend says otherwise

    def prepared_xids(self, conn: Connection) -> list[str]:
        """The ids of the transactions prepared and not yet finished."""
        return []

    def finish_prepared(self, conn: Connection, xid: str, commit: bool) -> None:
        """Commit (or roll back) the prepared transaction ``xid`` if the database has it.

        Raises ``StillAttached`` while the session that prepared it still holds it.
        """
        raise TransactionError(f"{self.name} has no prepared transactions")

    # -- claims -------------------------------------------------------------------------

    @abstractmethod
    def claim(self, engine: Engine, key: bytes) -> AbstractContextManager[Claim]:
        """Try, without waiting, to claim ``key`` (a digest) across every process."""


class StillAttached(Exception):
    """A prepared transaction whose session the server has not yet seen die."""


@contextmanager
def session_claim(
    engine: Engine, take: sa.TextClause, give: sa.TextClause, key: Any
) -> Iterator[Claim]:
    """A claim held as a server session's lock: ``take`` tries it, ``give`` releases it."""
    # The lock lives as long as this session; autocommit keeps it from idling in a transaction.
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        acquired = bool(conn.execute(take, {"key": key}).scalar())
        try:
            yield Claim(acquired)
        finally:
            if acquired:
                conn.execute(give, {"key": key})
