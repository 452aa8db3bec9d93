"""How many rows reach each server quickly, inside the caller's transaction.

Statements are compiled by SQLAlchemy once per column set and run straight on the driver:
``executemany`` of one prepared INSERT on SQLite, PyMySQL's multi-row INSERT on MariaDB, and
COPY on PostgreSQL. Values are converted with the columns' own SQLAlchemy bind processors, so
they are stored exactly as a single-record write stores them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Dialect

from dataflow.errors import ConfigurationError

Row = dict[str, Any]


class RowRefused(Exception):
    """The database refused the row at ``position`` of a load, as the driver could tell."""

    def __init__(self, position: int, error: sa.exc.DBAPIError) -> None:
        super().__init__(f"row {position} of the batch was refused: {error}")
        self.position = position
        self.error = error


#: A row as the driver takes it: a tuple for positional parameters, a dict for named ones.
Encoded = tuple[Any, ...] | Row

#: Field kinds whose checked Python values every driver takes as they are.
_NATIVE = frozenset({"str", "int", "float", "bool"})


class Driver:
    """Loads rows into a table on one dialect; subclasses override only what differs."""

    #: Whether a rollback undoes CREATE and DROP of temporary tables.
    transactional_ddl = True
    #: Whether ``load`` raises RowRefused, naming the refused row, rather than a plain error.
    names_refused_rows = False
    #: The fewest rows an atomic plain insert writes per statement, whatever the batch size.
    insert_rows = 0
    #: How an upsert writes a batch: "staged" (an UPDATE and an INSERT of the rest, from a
    #: temporary table), "staged-conflict" (one INSERT ... ON CONFLICT from the temporary
    #: table) or "direct" (INSERT ... ON CONFLICT run for each row by executemany).
    upsert = "staged"

    def __init__(self, dialect: Dialect, kinds: dict[str, str]) -> None:
        self.dialect = dialect
        self._kinds = kinds  # column name -> field kind, for the columns of the model
        self._statements: dict[tuple[Any, ...], tuple[str, tuple[str, ...] | None]] = {}
        self._processors: dict[str, Callable[[Any], Any] | None] = {}

    # -- encoding -------------------------------------------------------------------------

    def encode(
        self,
        table: sa.Table,
        names: tuple[str, ...],
        rows: Sequence[Row],
        shared: Row | None = None,
        extra: Mapping[str, Sequence[Any]] | None = None,
        insert: sa.Insert | None = None,
    ) -> tuple[str, list[Encoded]]:
        """The statement loading ``rows`` into ``table``, and the rows as the driver takes them.

        ``names`` are the row columns (a row lacking one gives NULL); ``shared`` columns take
        one value for every row, converted once; ``extra`` columns are given whole. Values
        are converted a column at a time. ``insert`` replaces the plain INSERT (to add an
        ON CONFLICT clause, say).
        """
        shared = shared or {}
        extra = extra or {}
        sql, order = self.statement(table, (*names, *extra, *shared), insert)
        columns: dict[str, Iterable[Any]] = dict(extra)
        for name in names:
            values = list(map(dict.get, rows, repeat(name)))
            process = self.processor(table, name)
            if process is not None:
                values = [None if v is None else process(v) for v in values]
            columns[name] = values
        for name, value in shared.items():
            columns[name] = repeat(self.convert(table, name, value), len(rows))
        if order is None:  # named parameters: one dict per row
            keys = list(columns)
            return sql, [
                dict(zip(keys, values, strict=True))
                for values in zip(*columns.values(), strict=True)
            ]
        return sql, list(zip(*(columns[name] for name in order), strict=True))

    def processor(self, table: sa.Table, name: str) -> Callable[[Any], Any] | None:
        key = f"{table.name}.{name}"
        if key not in self._processors:
            native = self._kinds.get(name) in _NATIVE
            column_type = table.c[name].type
            self._processors[key] = (
                None
                if native
                else column_type.dialect_impl(self.dialect).bind_processor(self.dialect)
            )
        return self._processors[key]

    def convert(self, table: sa.Table, name: str, value: Any) -> Any:
        """A value of ``table.name`` as the driver stores it."""
        process = self.processor(table, name)
        return value if process is None or value is None else process(value)

    # -- loading --------------------------------------------------------------------------

    def statement(
        self, table: sa.Table, names: tuple[str, ...], insert: sa.Insert | None = None
    ) -> tuple[str, tuple[str, ...] | None]:
        """The driver-level INSERT of ``names`` into ``table`` and its parameter order.

        The order is None when the driver takes named parameters (rows are passed as dicts).
        """
        key = (table.name, names, id(insert))
        found = self._statements.get(key)
        if found is None:
            compiled = (table.insert() if insert is None else insert).compile(
                dialect=self.dialect, column_keys=list(names), for_executemany=True
            )
            positions = compiled.positiontup if compiled.positional else None
            order = tuple(positions) if positions is not None else None
            found = self._statements[key] = (compiled.string, order)
        return found

    def load(self, conn: Connection, sql: str, rows: Sequence[Encoded]) -> None:
        """Run the prepared INSERT once per row, in one ``executemany``."""
        if rows:
            conn.exec_driver_sql(sql, list(rows))

    def reserve_ids(self, conn: Connection, table: sa.Table, pk: str, rows: list[Row]) -> bool:
        """Give the rows that lack a primary key the ids the database would; False if unable."""
        return False

    def insert_returning(self, conn: Connection, table: sa.Table, pk: str, rows: list[Row]) -> list:
        """Insert rows (Python values, shared columns included) and return their ids in order."""
        if not conn.dialect.insert_returning:
            raise ConfigurationError(
                f"return_ids needs INSERT ... RETURNING, which this {conn.dialect.name} server "
                "lacks (MariaDB has it from 10.5); leave return_ids off"
            )
        stmt = table.insert().returning(table.c[pk], sort_by_parameter_order=True)
        return list(conn.execute(stmt, rows).scalars())

    # -- staging tables -------------------------------------------------------------------

    def stage_options(self) -> dict[str, Any]:
        return {}

    def drop_stage(self, conn: Connection, stage: sa.Table) -> None:
        conn.execute(sa.schema.DropTable(stage, if_exists=True))

    def empty_stage(self, conn: Connection, stage: sa.Table) -> None:
        conn.execute(stage.delete())

    def narrowing(self, column: sa.Column[Any]) -> sa.ColumnElement[bool] | None:
        """A clause keeping ``column`` to the batch's values (bound as ``_batch_keys``)."""
        return None


class SQLiteDriver(Driver):
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


class PostgresDriver(Driver):
    """COPY in binary format: about twice as fast as text, as the server parses nothing."""

    names_refused_rows = True
    upsert = "staged-conflict"
    # A COPY costs a few round trips besides its rows: measured, 1,000-row COPYs run at
    # two thirds of the rate of 10,000-row ones.
    insert_rows = 10_000

    def __init__(self, dialect: Dialect, kinds: dict[str, str]) -> None:
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


class MySQLDriver(Driver):
    transactional_ddl = False

    def drop_stage(self, conn: Connection, stage: sa.Table) -> None:
        # Plain DROP TABLE commits the transaction on MySQL; DROP TEMPORARY TABLE does not.
        name = self.dialect.identifier_preparer.format_table(stage)
        conn.exec_driver_sql(f"DROP TEMPORARY TABLE IF EXISTS {name}")


_DRIVERS: dict[str, type[Driver]] = {
    "sqlite": SQLiteDriver,
    "postgresql": PostgresDriver,
    "mysql": MySQLDriver,
}


def driver_for(dialect: Dialect, kinds: dict[str, str]) -> Driver:
    return _DRIVERS.get(dialect.name, Driver)(dialect, kinds)
