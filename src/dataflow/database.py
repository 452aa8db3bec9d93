"""The SQLAlchemy engine behind a DataFlow instance, and how statements get a connection."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from dataflow.config import DatabaseTarget, DataFlowConfig
from dataflow.query import sqlite_functions

log = logging.getLogger("dataflow")

_DRIVER_EXTRA = {"postgresql": "postgresql", "mysql": "mysql"}


def _check_driver(target: DatabaseTarget) -> None:
    module = {"postgresql": "psycopg", "mysql": "pymysql"}.get(target.dialect)
    if module is None:
        return
    try:
        __import__(module)
    except ImportError as exc:
        from dataflow.errors import ConfigurationError

        raise ConfigurationError(
            f"{target.dialect} needs the '{module}' driver: pip install "
            f"'dataflow[{_DRIVER_EXTRA[target.dialect]}]'"
        ) from exc


def _pool_options(config: DataFlowConfig) -> dict[str, Any]:
    return {
        "pool_size": config.pool_size,
        "max_overflow": config.pool_max_overflow,
        "pool_recycle": config.pool_recycle,
        "pool_pre_ping": config.pool_pre_ping,
        "pool_reset_on_return": config.pool_reset_on_return,
        "pool_timeout": config.pool_timeout,
    }


def _sqlite_engine(target: DatabaseTarget, config: DataFlowConfig) -> Engine:
    kwargs: dict[str, Any] = {"echo": config.echo}
    connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": 30}
    if target.memory:
        # One connection, so every node of this instance sees the same in-memory database.
        kwargs["poolclass"] = StaticPool
    else:
        kwargs.update(_pool_options(config))
    engine = sa.create_engine(target.url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Database.begin() issues BEGIN itself; the driver's implicit BEGIN would start
        # transactions late (at the first write) and not at all for reads.
        dbapi_conn.isolation_level = None
        sqlite_functions.register(dbapi_conn)
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        if not target.memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def _server_engine(target: DatabaseTarget, config: DataFlowConfig) -> Engine:
    _check_driver(target)
    return sa.create_engine(target.url, echo=config.echo, **_pool_options(config))


class Database:
    """Owns the engine and hands out transactional connections."""

    def __init__(self, target: DatabaseTarget, config: DataFlowConfig) -> None:
        self.target = target
        self.dialect = target.dialect
        if target.dialect == "sqlite":
            self.engine = _sqlite_engine(target, config)
        else:
            self.engine = _server_engine(target, config)
        # The in-memory database has one connection; a lock keeps threads from interleaving.
        self._lock: threading.RLock | None = threading.RLock() if target.memory else None
        #: The connection of an enclosing transaction scope, if any (per thread / task).
        self.bound: ContextVar[Connection | None] = ContextVar(
            f"dataflow_tx_{id(self)}", default=None
        )

    @contextmanager
    def begin(self, write: bool = True) -> Iterator[Connection]:
        """A connection inside a transaction that commits when the block ends without error.

        Inside an enclosing transaction scope, the scope's connection is used and the scope
        decides when to commit.
        """
        bound = self.bound.get()
        if bound is not None:
            yield bound
            return
        with self._lock or nullcontext():
            conn = self.engine.connect()
            try:
                with conn.begin():
                    if self.dialect == "sqlite":
                        # A write takes the lock up front: a deferred transaction that later
                        # writes can fail with SQLITE_BUSY without waiting for the timeout.
                        # Straight to the driver, as this runs on every hot path.
                        driver = conn.connection.driver_connection
                        driver.execute("BEGIN IMMEDIATE" if write else "BEGIN")  # type: ignore[union-attr]
                    yield conn
            finally:
                conn.close()

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A plain connection for schema work, outside any transaction scope."""
        with self._lock or nullcontext():
            conn = self.engine.connect()
            try:
                yield conn
            finally:
                conn.close()

    def dispose(self) -> None:
        self.engine.dispose()
