"""How many rows reach a server quickly, inside the caller's transaction: the base loader.

Statements are compiled by SQLAlchemy once per column set and run straight on the driver:
``executemany`` of one prepared INSERT on SQLite, PyMySQL's multi-row INSERT on MariaDB, and
COPY on PostgreSQL. Values are converted with the columns' own SQLAlchemy bind processors, so
they are stored exactly as a single-record write stores them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any

import sqlalchemy as sa
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


class BulkLoader:
    """Loads rows into a table on one dialect; each dialect's subclass overrides what differs."""

    #: Whether a rollback undoes CREATE and DROP of temporary tables.
    transactional_ddl = True
    #: Whether ``load`` raises RowRefused, naming the refused row, rather than a plain error
    #: (``names_refused`` says it for one table).
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

    def names_refused(self, conn: Connection, table: sa.Table) -> bool:
        """Whether ``load`` into ``table`` raises RowRefused, naming the refused row."""
        return self.names_refused_rows

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
