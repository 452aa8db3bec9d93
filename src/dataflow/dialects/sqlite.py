"""SQLite: the embedded default. One writer at a time, WAL mode, functions DataFlow adds."""

from __future__ import annotations

import datetime as dt
import decimal
import fcntl
import hashlib
import os
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine import Dialect as SADialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.compiler import SQLCompiler

from dataflow.dialects import sqlite_functions
from dataflow.dialects.base import Claim, Dialect
from dataflow.dialects.bulk import BulkLoader, Encoded, Row, RowRefused
from dataflow.dialects.functions import as_real

#: Claims on in-memory databases, which live in this process only: (engine id, key).
_in_memory: set[tuple[int, bytes]] = set()
_in_memory_lock = threading.Lock()


class SQLite(Dialect):
    name = "sqlite"
    title = "SQLite"
    schemes = ("sqlite", "sqlite+pysqlite")
    driver_name = "sqlite"
    embedded = True
    partial_indexes = True
    alters_by_copy = True
    rows_from_cursor = True
    one_writer = True
    isolation_levels = False  # SQLite is serializable whatever the level
    regex_flags = "(?s)"  # REGEXP is RE2 (dialects/sqlite_functions.py)
    regex_end = r"\z"
    like_by_glob = True
    decimal_significant = 15  # Decimals are stored as doubles

    def engine_options(self, memory: bool, pool: dict[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        if memory:
            # One connection, so every node of the instance sees the same in-memory database.
            options["poolclass"] = StaticPool
        else:
            options.update(pool)
        return options

    def prepare_engine(self, engine: Engine, memory: bool) -> None:
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
            # begin() issues BEGIN itself; the driver's implicit BEGIN would start
            # transactions late (at the first write) and not at all for reads.
            dbapi_conn.isolation_level = None
            sqlite_functions.register(dbapi_conn)
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    def begin(self, conn: Connection, write: bool) -> None:
        # A write takes the lock up front: a deferred transaction that later writes can fail
        # with SQLITE_BUSY without waiting for the timeout. Straight to the driver, as this
        # runs on every hot path.
        driver = conn.connection.driver_connection
        driver.execute("BEGIN IMMEDIATE" if write else "BEGIN")  # type: ignore[union-attr]

    def interrupt(self, conn: Connection, engine: Engine) -> None:
        conn.connection.driver_connection.interrupt()  # type: ignore[union-attr]

    def insert(self, table: sa.Table) -> Any:
        return sqlite.insert(table)

    def bulk_loader(self, dialect: SADialect, kinds: dict[str, str]) -> BulkLoader:
        return SQLiteLoader(dialect, kinds)

    def fold(self, expr: Any) -> sa.ColumnElement[Any]:
        # SQLite's lower() only folds ASCII.
        return getattr(sa.func, sqlite_functions.FOLD)(expr)

    def regex_match(self, expr: sa.ColumnElement[Any], pattern: str) -> sa.ColumnElement[bool]:
        # RE2 under a time budget; the start function runs once, as the statement begins.
        start = getattr(sa.func, sqlite_functions.REGEX_START)(pattern, type_=sa.String)
        match = getattr(sa.func, sqlite_functions.REGEX)
        return match(start, expr, type_=sa.Boolean)

    def checked_arithmetic(
        self, expr: sa.ColumnElement[Any], column: sa.Column[Any]
    ) -> sa.ColumnElement[Any]:
        # An integer that overflows becomes a float, a float an infinity; both are refused.
        # The check stays in SQL: Python is called only for a value out of range.
        integral = isinstance(column.type, sa.Integer)
        if integral:
            bad = sa.func.typeof(expr) == "real"
        else:
            bad = sa.func.abs(expr) >= sa.literal_column("9e999")  # SQLite's infinity
        refuse = getattr(sa.func, sqlite_functions.OUT_OF_RANGE)(column.name, int(integral))
        return sa.case((bad, refuse), else_=expr)

    def decimal_sum(self, expr: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        # Decimals are stored as doubles; SUM would add them as doubles and drift.
        return getattr(sa.func, sqlite_functions.DECIMAL_SUM)(expr, type_=expr.type)

    def datetime_reader(self) -> Callable[[Any], Any] | None:
        parse = dt.datetime.fromisoformat

        def read(value: str | None) -> dt.datetime | None:
            # Parsing the offset is several times faster than datetime.replace(tzinfo=...).
            return None if value is None else parse(value + "+00:00")

        return read

    def decimal_type(self, dialect: SADialect) -> sa.types.TypeEngine[Any]:
        return dialect.type_descriptor(sa.Float())

    def decimal_bind(self, value: decimal.Decimal) -> Any:
        return float(value)

    def cannot_prepare(self, conn: Connection) -> str | None:
        return "SQLite, which has no prepared transactions"

    def claim(self, engine: Engine, key: bytes) -> AbstractContextManager[Claim]:
        database = engine.url.database
        if database in (None, "", ":memory:"):
            return _memory_claim(engine, key)
        return _file_claim(str(database), key)


@compiles(as_real, "sqlite")
def _as_real(element: as_real, compiler: SQLCompiler, **kw: Any) -> str:
    # RETURNING hands back integral REALs as ints; the CAST keeps them floats.
    return f"CAST({compiler.process(element.clauses, **kw)} AS REAL)"


class SQLiteLoader(BulkLoader):
    names_refused_rows = True
    upsert = "direct"

    def load(self, conn: Connection, sql: str, rows: Sequence[Encoded]) -> None:
        # executemany stops at the refused row, each row before it counted as one change.
        driver = conn.connection.driver_connection
        before = driver.total_changes  # type: ignore[union-attr]
        try:
            super().load(conn, sql, rows)
        except sa.exc.DBAPIError as exc:
            raise RowRefused(driver.total_changes - before, exc) from exc  # type: ignore[union-attr]

    def reserve_ids(self, conn: Connection, table: sa.Table, pk: str, rows: list[Row]) -> bool:
        # SQLite numbers a row without a key max(rowid) + 1; the write transaction holds the
        # database lock, so assigning those numbers here gives the same ids, known up front.
        current = conn.execute(sa.select(sa.func.max(table.c[pk]))).scalar() or 0
        for row in rows:
            given = row.get(pk)
            if given is None:
                current += 1
                row[pk] = current
            elif given > current:
                current = given
        return True


@contextmanager
def _memory_claim(engine: Engine, key: bytes) -> Iterator[Claim]:
    held = (id(engine), key)
    with _in_memory_lock:
        acquired = held not in _in_memory
        _in_memory.add(held)
    try:
        yield Claim(acquired)
    finally:
        if acquired:
            with _in_memory_lock:
                _in_memory.discard(held)


@contextmanager
def _file_claim(database: str, key: bytes) -> Iterator[Claim]:
    # One lock file per claim, in the temporary directory, named after the database file and
    # the claim. It is removed only once its work is finished, so two processes can never hold
    # locks on two different files of the same name while the work is still to do.
    path = os.path.realpath(database)
    digest = hashlib.sha256(path.encode() + b":" + key).hexdigest()[:32]
    lock_path = os.path.join(tempfile.gettempdir(), f"dataflow-claim-{digest}.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield Claim(False)
            return
        held = Claim(True)
        yield held
        if held.done:
            os.unlink(lock_path)
    finally:
        os.close(fd)
