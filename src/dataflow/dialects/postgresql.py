"""PostgreSQL (psycopg 3): COPY for bulk loads, row-level security, prepared transactions."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine import Dialect as SADialect

from dataflow.dialects.base import Dialect
from dataflow.dialects.bulk import BulkLoader, Encoded, Row, RowRefused


class PostgreSQL(Dialect):
    name = "postgresql"
    title = "PostgreSQL"
    schemes = ("postgresql", "postgres", "postgresql+psycopg")
    driver_name = "postgresql+psycopg"
    driver_module = "psycopg"
    driver_extra = "postgresql"
    two_phase = True
    default_port = 5432
    partial_indexes = True
    row_security = True
    nulls_sort_high = True

    def interrupt(self, conn: Connection, engine: Engine) -> None:
        conn.connection.driver_connection.cancel_safe()  # type: ignore[union-attr]

    def insert(self, table: sa.Table) -> Any:
        return postgresql.insert(table)

    def bulk_loader(self, dialect: SADialect, kinds: dict[str, str]) -> BulkLoader:
        return PostgresLoader(dialect, kinds)

    def fold(self, expr: Any) -> sa.ColumnElement[Any]:
        # Columns compare in the "C" collation, whose lower() folds ASCII only.
        return sa.func.lower(sa.collate(expr, "default"))

    def text_type(self, dialect: SADialect) -> sa.types.TypeEngine[Any]:
        # The database's locale would sort linguistically.
        return postgresql.TEXT(collation="C")

    def cannot_prepare(self, conn: Connection) -> str | None:
        allowed = int(conn.execute(sa.text("SHOW max_prepared_transactions")).scalar_one())
        if allowed == 0:
            return (
                "has max_prepared_transactions = 0; set it above 0 (ALTER SYSTEM SET "
                "max_prepared_transactions = 20, then restart PostgreSQL)"
            )
        return None

    def prepared_xids(self, conn: Connection) -> list[str]:
        query = "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()"
        return list(conn.execute(sa.text(query)).scalars())

    def finish_prepared(self, conn: Connection, xid: str, commit: bool) -> None:
        if xid not in self.prepared_xids(conn):
            return
        verb = "COMMIT" if commit else "ROLLBACK"
        conn.execute(
            sa.text(f"{verb} PREPARED :xid").bindparams(
                sa.bindparam("xid", xid, literal_execute=True)
            )
        )

    def try_lock(self, key: bytes) -> tuple[sa.TextClause, sa.TextClause, Any]:
        return (
            sa.text("SELECT pg_try_advisory_lock(:key)"),
            sa.text("SELECT pg_advisory_unlock(:key)"),
            int.from_bytes(key[:8], "big", signed=True),
        )


class PostgresLoader(BulkLoader):
    """COPY in binary format: about twice as fast as text, as the server parses nothing."""

    names_refused_rows = True
    upsert = "staged-conflict"
    # A COPY costs a few round trips besides its rows: measured, 1,000-row COPYs run at
    # two thirds of the rate of 10,000-row ones.
    insert_rows = 10_000

    def __init__(self, dialect: SADialect, kinds: dict[str, str]) -> None:
        super().__init__(dialect, kinds)
        self._targets: dict[str, tuple[sa.Table, tuple[str, ...]]] = {}
        self._types: dict[str, list[int]] = {}

    def statement(
        self, table: sa.Table, names: tuple[str, ...], insert: sa.Insert | None = None
    ) -> tuple[str, tuple[str, ...] | None]:
        key = (table.name, names)
        found = self._statements.get(key)
        if found is None:
            quote = self.dialect.identifier_preparer
            columns = ", ".join(quote.quote(n) for n in names)
            sql = f"COPY {quote.format_table(table)} ({columns}) FROM STDIN (FORMAT BINARY)"
            found = self._statements[key] = (sql, names)
            self._targets[sql] = (table, names)
        return found

    def load(self, conn: Connection, sql: str, rows: Sequence[Encoded]) -> None:
        if not rows:
            return
        import psycopg

        types = self._column_types(conn, sql)
        driver = conn.connection.driver_connection
        try:
            with driver.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[union-attr]
                copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
        except psycopg.Error as exc:
            error = cast(
                sa.exc.DBAPIError, sa.exc.DBAPIError.instance(sql, None, exc, psycopg.Error)
            )
            # The server names the COPY line it refused: "COPY products, line 7".
            line = re.search(r"\bline (\d+)", exc.diag.context or "")
            if line is None:
                raise error from exc
            raise RowRefused(int(line.group(1)) - 1, error) from exc

    def _column_types(self, conn: Connection, sql: str) -> list[int]:
        """The type OIDs of the COPY's columns, which binary COPY must be told."""
        if sql not in self._types:
            table, names = self._targets[sql]
            attributes = sa.table(
                "pg_attribute",
                sa.column("attrelid"),
                sa.column("attname"),
                sa.column("atttypid"),
                sa.column("attnum"),
            )
            relation = sa.cast(
                self.dialect.identifier_preparer.format_table(table), postgresql.REGCLASS
            )
            found = dict(
                conn.execute(
                    sa.select(attributes.c.attname, attributes.c.atttypid).where(
                        attributes.c.attrelid == relation, attributes.c.attnum > 0
                    )
                ).all()
            )
            self._types[sql] = [int(found[name]) for name in names]
        return self._types[sql]

    def processor(self, table: sa.Table, name: str) -> Callable[[Any], Any] | None:
        if self._kinds.get(name) in ("dict", "list"):
            return None  # binary COPY dumps JSON documents itself
        return super().processor(table, name)

    def reserve_ids(self, conn: Connection, table: sa.Table, pk: str, rows: list[Row]) -> bool:
        missing = [row for row in rows if row.get(pk) is None]
        if missing:
            name = self.dialect.identifier_preparer.format_table(table)
            sequence = sa.func.pg_get_serial_sequence(name, pk)
            stmt = sa.select(sa.func.nextval(sequence)).select_from(
                sa.func.generate_series(1, len(missing))
            )
            for row, new_id in zip(missing, conn.execute(stmt).scalars(), strict=True):
                row[pk] = new_id
        return True

    def stage_options(self) -> dict[str, Any]:
        return {"postgresql_on_commit": "DROP"}

    def empty_stage(self, conn: Connection, stage: sa.Table) -> None:
        # DELETE would leave every earlier batch behind as dead rows that each join reads.
        conn.exec_driver_sql(f"TRUNCATE {self.dialect.identifier_preparer.format_table(stage)}")

    def narrowing(self, column: sa.Column[Any]) -> sa.ColumnElement[bool] | None:
        # Joined to a batch of a thousand rows, the planner prefers reading the whole table to
        # a thousand index lookups; naming the keys makes it use the index.
        keys = sa.bindparam("_batch_keys", type_=postgresql.ARRAY(column.type))
        return column == sa.any_(keys)
