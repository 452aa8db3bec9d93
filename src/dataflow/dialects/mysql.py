"""MySQL and MariaDB (PyMySQL): binary NO PAD collations, XA transactions, named locks."""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine import Dialect as SADialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from dataflow.dialects.base import Claim, Dialect, StillAttached, session_claim
from dataflow.dialects.bulk import BulkLoader
from dataflow.dialects.functions import as_double
from dataflow.errors import TransactionError

log = logging.getLogger("dataflow.transactions")


class MySQL(Dialect):
    name = "mysql"
    title = "MySQL/MariaDB"
    schemes = ("mysql", "mariadb", "mysql+pymysql", "mariadb+pymysql")
    driver_name = "mysql+pymysql"
    driver_module = "pymysql"
    driver_extra = "mysql"
    two_phase = True
    default_port = 3306
    # ON DUPLICATE KEY UPDATE has no WHERE and no RETURNING: upserts run in steps.
    upsert_returning = False
    regex_flags = "(?s-i)"
    regex_end = r"\z"

    def interrupt(self, conn: Connection, engine: Engine) -> None:
        thread_id = conn.connection.driver_connection.thread_id()  # type: ignore[union-attr]
        with engine.connect() as other:
            other.execute(sa.text("KILL QUERY :id"), {"id": thread_id})

    def insert(self, table: sa.Table) -> Any:
        return mysql.insert(table)

    def bulk_loader(self, dialect: SADialect, kinds: dict[str, str]) -> BulkLoader:
        return MySQLLoader(dialect, kinds)

    def conflicted(self, error: BaseException) -> bool:
        # ER_LOCK_DEADLOCK; ER_CHECKREAD, MariaDB's snapshot isolation refusing a changed row.
        args: tuple[Any, ...] = getattr(getattr(error, "orig", error), "args", ())
        return bool(args) and args[0] in (1213, 1020)

    def text_type(self, dialect: SADialect) -> sa.types.TypeEngine[Any]:
        # A length, to index the column, and a binary NO PAD collation, since PAD SPACE
        # collations ignore trailing spaces in =, GROUP BY and unique keys.
        mariadb = getattr(dialect, "is_mariadb", False)
        collation = "utf8mb4_nopad_bin" if mariadb else "utf8mb4_0900_bin"
        return dialect.type_descriptor(mysql.VARCHAR(255, charset="utf8mb4", collation=collation))

    def datetime_type(self, dialect: SADialect) -> sa.types.TypeEngine[Any]:
        return dialect.type_descriptor(mysql.DATETIME(fsp=6))

    def decimal_type(self, dialect: SADialect) -> sa.types.TypeEngine[Any]:
        # DataFlow's Decimal contract (ExactDecimal.PRECISION and SCALE) is this column's.
        return dialect.type_descriptor(sa.Numeric(38, 10))

    def cannot_prepare(self, conn: Connection) -> str | None:
        dialect = conn.dialect
        version = dialect.server_version_info or ()
        # Before these versions a prepared XA transaction died with its client's connection.
        oldest = (10, 5) if getattr(dialect, "is_mariadb", False) else (5, 7, 7)
        if tuple(version[: len(oldest)]) < oldest:
            shown = ".".join(str(v) for v in version)
            need = ".".join(str(v) for v in oldest)
            return (
                f"runs {shown}, whose prepared XA transactions do not survive a crash; use {need}+"
            )
        return None

    # A prepared XA transaction stays attached to its session until the server notices the
    # session is gone; only then can another session see it (XA RECOVER) and finish it. A lock
    # the session holds says it is still there: recovery takes the lock before touching it.

    def hold_prepared(self, conn: Connection, xid: str) -> None:
        if not conn.execute(sa.text("SELECT GET_LOCK(:n, 0)"), {"n": _xa_lock(xid)}).scalar():
            raise TransactionError(f"XA transaction {xid}: another session holds its id")

    def release_prepared(self, conn: Connection, xid: str) -> None:
        try:
            conn.execute(sa.text("DO RELEASE_LOCK(:n)"), {"n": _xa_lock(xid)})
        except sa.exc.SQLAlchemyError:  # the session is gone, and its lock with it
            log.debug("XA transaction %s: releasing its lock failed", xid, exc_info=True)

    def prepared_xids(self, conn: Connection) -> list[str]:
        """On the whole server, not only the current database."""
        found = []
        for row in conn.exec_driver_sql("XA RECOVER").mappings():
            data = row["data"][: row["gtrid_length"]]
            found.append(data.decode() if isinstance(data, bytes) else data)
        return found

    def finish_prepared(self, conn: Connection, xid: str, commit: bool) -> None:
        try:
            self.hold_prepared(conn, xid)
        except TransactionError:
            raise StillAttached(xid) from None
        try:
            if xid in self.prepared_xids(conn):
                conn.execute(sa.text(f"XA {'COMMIT' if commit else 'ROLLBACK'} :xid"), {"xid": xid})
        finally:
            self.release_prepared(conn, xid)

    def claim(self, engine: Engine, key: bytes) -> AbstractContextManager[Claim]:
        return session_claim(
            engine,
            sa.text("SELECT GET_LOCK(:key, 0)"),
            sa.text("SELECT RELEASE_LOCK(:key)"),
            "dataflow:" + key.hex()[:40],  # lock names are at most 64 characters
        )


@compiles(as_double, "mysql")
def _double(element: as_double, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS DOUBLE)"


def _xa_lock(xid: str) -> str:
    return f"dataflow-xa:{xid}"[:64]


class MySQLLoader(BulkLoader):
    transactional_ddl = False

    def drop_stage(self, conn: Connection, stage: sa.Table) -> None:
        # Plain DROP TABLE commits the transaction on MySQL; DROP TEMPORARY TABLE does not.
        name = self.dialect.identifier_preparer.format_table(stage)
        conn.exec_driver_sql(f"DROP TEMPORARY TABLE IF EXISTS {name}")
