"""The SQLAlchemy engine behind a DataFlow instance, and how statements get a connection."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.engine import Dialect as SADialect

from dataflow.config import DatabaseTarget, DataFlowConfig
from dataflow.database.change_feed import ChangeEvent, ChangeFeed
from dataflow.database.driver_errors import read
from dataflow.database.locks import OwnerLock
from dataflow.database.scope import find_transaction
from dataflow.dialects import Dialect, dialect_named
from dataflow.errors import ConfigurationError, DatabaseConnectionError, TransactionError
from dataflow.monitoring import StatementMonitor

if TYPE_CHECKING:
    from dataflow.database.transaction import Transaction

log = logging.getLogger("dataflow")


def _check_driver(dialect: Dialect) -> None:
    module = dialect.driver_module
    if module is None:
        return
    try:
        __import__(module)
    except ImportError as exc:
        raise ConfigurationError(
            f"{dialect.name} needs the '{module}' driver: pip install "
            f"'dataflow-workflows[{dialect.driver_extra}]'"
        ) from exc


def _pool_options(dialect: Dialect, config: DataFlowConfig) -> dict[str, Any]:
    pre_ping = config.pool_pre_ping
    return {
        "pool_size": config.pool_size,
        "max_overflow": config.pool_max_overflow,
        "pool_recycle": config.pool_recycle,
        # A server may drop idle connections (a failover, a restart, an idle timeout).
        "pool_pre_ping": not dialect.embedded if pre_ping is None else pre_ping,
        "pool_reset_on_return": config.pool_reset_on_return,
        "pool_timeout": config.pool_timeout,
    }


def create_engine(dialect: Dialect, target: DatabaseTarget, config: DataFlowConfig) -> Engine:
    """The engine of ``target``, its connections set up as ``dialect`` needs."""
    _check_driver(dialect)
    options = dialect.engine_options(target.memory, _pool_options(dialect, config))
    # Statement parameters are row values: never in an error message or a log line.
    engine = sa.create_engine(target.url, echo=config.echo, hide_parameters=True, **options)
    _explain_connect_failures(engine, dialect)
    dialect.prepare_engine(engine, target.memory)
    return engine


def _explain_connect_failures(engine: Engine, dialect: Dialect) -> None:
    """A failed connection attempt raises DatabaseConnectionError naming where, with a hint."""
    url = engine.url

    @event.listens_for(engine, "do_connect")
    def _connect(
        sa_dialect: SADialect, _record: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]
    ) -> Any:
        try:
            return sa_dialect.loaded_dbapi.connect(*cargs, **cparams)
        except sa_dialect.loaded_dbapi.Error as exc:
            error = connect_error(dialect, url, exc)
        raise error from None


def connect_error(dialect: Dialect, url: URL, exc: BaseException) -> DatabaseConnectionError:
    """What went wrong connecting to ``url``: where, the driver's reason, and what to check."""
    reason = " ".join(read(exc).text.split())
    if url.password:
        reason = reason.replace(str(url.password), "***")
    if dialect.embedded:
        where = f"the {dialect.title} database {url.database}"
        hint = "Check that its folder exists and is writable, and the path in DATABASE_URL."
    else:
        port = url.port or dialect.default_port
        user = f" as user '{url.username}'" if url.username else ""
        where = f"{dialect.title} at {url.host or 'localhost'}:{port}, database '{url.database}'"
        where += user
        hint = (
            "Is the server running and accepting connections there, and are the host, port, "
            "database, user name and password in DATABASE_URL (or the URL given to DataFlow) "
            "right?"
        )
    error = DatabaseConnectionError(
        f"cannot connect to {where}: {reason}. {hint}",
        sqlstate="08001",
        driver_error=f"{type(exc).__module__}.{type(exc).__qualname__}",
    )
    error.__suppress_context__ = True
    return error


class Database:
    """Owns the engine and hands out transactional connections."""

    def __init__(self, target: DatabaseTarget, config: DataFlowConfig) -> None:
        self.target = target
        self.dialect = dialect_named(target.dialect)
        self.engine = create_engine(self.dialect, target, config)
        # The in-memory database has one connection; a lock keeps threads from interleaving.
        self.shared_lock: OwnerLock | None = OwnerLock() if target.memory else None
        # SQLite has one writer. Writers of this process queue on a lock, which wakes the next
        # one the moment the last commits; SQLite's own busy handler would sleep and poll.
        self._writer: threading.Lock | None = (
            threading.Lock() if self.dialect.one_writer and not target.memory else None
        )
        self.monitor: StatementMonitor | None = (
            StatementMonitor(self.engine, config.slow_query_threshold)
            if config.monitoring
            else None
        )
        #: Listeners of committed changes (see dataflow.database.change_feed).
        self.changes = ChangeFeed()
        #: The transaction of an enclosing ``db.transaction()`` block, if any (per thread / task).
        self.bound: ContextVar[Transaction | None] = ContextVar(
            f"dataflow_tx_{id(self)}", default=None
        )

    @contextmanager
    def begin(self, write: bool = True, join: bool = True) -> Iterator[Connection]:
        """A connection inside a transaction that commits when the block ends without error.

        Inside an enclosing transaction (a ``db.transaction()`` block, a workflow's transaction
        scope, a saga step) its connection is used and the transaction decides when to commit.
        ``join=False`` always starts a transaction of its own.
        """
        tx = find_transaction(self) if join else None
        if tx is not None:
            with tx.statement() as conn:
                yield conn
            return
        if not join:
            self._refuse_inside_transaction("start a separate transaction")
        writer = self._writer if write else None
        with self._held(), writer or nullcontext():
            conn = self.engine.connect()
            try:
                with conn.begin():
                    self.dialect.begin(conn, write)
                    yield conn
            finally:
                conn.close()

    def announce(self, event: ChangeEvent) -> None:
        """Tell listeners of a finished write: now, or when its enclosing transaction commits."""
        if not self.changes.listening:
            return
        tx = find_transaction(self, create=False)
        if tx is None:
            self.changes.publish((event,))
        else:
            tx.changes.append(event)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A plain connection for schema work, outside any transaction scope."""
        self._refuse_inside_transaction("create or change tables")
        with self._held():
            conn = self.engine.connect()
            try:
                yield conn
            finally:
                conn.close()

    def _held(self) -> Any:
        return self.shared_lock.held() if self.shared_lock is not None else nullcontext()

    def _refuse_inside_transaction(self, action: str) -> None:
        """With one writer, a second connection would wait on our own open transaction."""
        if self.dialect.one_writer and find_transaction(self, create=False) is not None:
            raise TransactionError(
                f"cannot {action} on the SQLite database {self.target.safe_url} while a "
                "transaction is open on it: SQLite allows one writer. Define the models (or "
                "call db.create_tables()) before the transaction begins."
            )

    def dispose(self) -> None:
        self.engine.dispose()
