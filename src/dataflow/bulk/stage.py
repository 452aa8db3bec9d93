"""Set-based writes of one batch: load it into a temporary table, then one statement each.

Skipping, upserting and updating rows by key all follow the same shape on every backend:
the batch goes into a temporary table with the driver's fastest path, then SQLAlchemy
statements join it to the model's table, carrying the features' WHERE clauses and shared
columns as ordinary bound values. Row counts of those statements are the true counts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from dataflow.dialects.bulk import BulkLoader, Row

if TYPE_CHECKING:
    from dataflow.statements.model import UniqueKey

#: The column numbering the rows of a batch, so that results can be matched back to them.
ROW_NUMBER = "_n"

Clauses = Sequence[sa.ColumnElement[bool]]


class Stage:
    """A temporary table for batches of ``columns`` of ``table``, keyed by ``keys``.

    ``where`` holds the clauses every statement on ``table`` carries (the features' scope).
    Statements are built once per stage; values that change per batch are bound when run.
    """

    def __init__(
        self,
        loader: BulkLoader,
        table: sa.Table,
        columns: tuple[str, ...],
        keys: tuple[str, ...],
        where: Clauses,
    ) -> None:
        self.loader = loader
        self.target = table
        self.columns = columns
        self.where = tuple(where)
        digest = hashlib.sha1(repr((table.name, columns, keys)).encode()).hexdigest()[:10]
        self.table = sa.Table(
            f"_dataflow_stage_{digest}",
            sa.MetaData(),
            sa.Column(ROW_NUMBER, sa.Integer),
            *(sa.Column(name, table.c[name].type) for name in columns),
            prefixes=["TEMPORARY"],
            **loader.stage_options(),
        )
        self.keys = keys
        self.match = sa.and_(*(table.c[k] == self.table.c[k] for k in keys))
        self.first_key = keys[0]
        narrowing = loader.narrowing(table.c[self.first_key])
        self.narrowing = () if narrowing is None else (narrowing,)
        self._statements: dict[tuple[Any, ...], Any] = {}
        self._params: dict[str, Any] = {}

    def create(self, conn: Connection) -> None:
        conn.execute(sa.schema.CreateTable(self.table, if_not_exists=True))

    def drop(self, conn: Connection) -> None:
        self.loader.drop_stage(conn, self.table)

    def fill(self, conn: Connection, rows: Sequence[Row]) -> None:
        """Make the stage hold exactly ``rows``, numbered from 0."""
        self.loader.empty_stage(conn, self.table)
        numbers = {ROW_NUMBER: range(len(rows))}
        sql, encoded = self.loader.encode(self.table, self.columns, rows, extra=numbers)
        self.loader.load(conn, sql, encoded)
        if self.narrowing:
            self._params = {"_batch_keys": [row[self.first_key] for row in rows]}

    # -- statements -----------------------------------------------------------------------

    def update_matching(
        self, conn: Connection, names: tuple[str, ...], shared: Row, same: tuple[str, ...] = ()
    ) -> int:
        """Set ``names`` (and ``shared``) on every row of the table matching a staged key.

        ``same`` names staged columns a row must also equal to change (its version).
        """
        key = ("update", names, tuple(shared), same)
        stmt = self._statements.get(key)
        if stmt is None:
            values: dict[str, Any] = {n: self.table.c[n] for n in names}
            values.update(self._shared(shared))
            equal = [self.target.c[n] == self.table.c[n] for n in same]
            where = (self.match, *self.narrowing, *self.where, *equal)
            stmt = self._statements[key] = sa.update(self.target).where(*where).values(values)
        return conn.execute(stmt, self._bind(shared)).rowcount

    def images(self, conn: Connection) -> dict[int, Row]:
        """Row number -> the table row holding that staged row's key, locked until the end."""
        stmt = self._statements.get(("images",))
        if stmt is None:
            on = sa.and_(self.match, *self.narrowing, *self.where)
            number = self.table.c[ROW_NUMBER]
            stmt = sa.select(number, *self.target.c).join_from(self.table, self.target, on)
            stmt = self._statements[("images",)] = stmt.with_for_update()
        found = {}
        for row in conn.execute(stmt, self._params).mappings():
            image = dict(row)
            found[image.pop(ROW_NUMBER)] = image
        return found

    def insert_missing(self, conn: Connection, shared: Row) -> int:
        """Insert the staged rows whose key no row in scope holds; return how many."""
        key = ("insert", tuple(shared))
        stmt = self._statements.get(key)
        if stmt is None:
            source = [self.table.c[n] for n in self.columns]
            source.extend(self._shared(shared).values())
            taken = sa.exists().where(self.match, *self.narrowing, *self.where)
            select = sa.select(*source).where(~taken).order_by(self.table.c[ROW_NUMBER])
            stmt = sa.insert(self.target).from_select([*self.columns, *shared], select)
            # SQLAlchemy keeps an INSERT's row count only when asked to.
            stmt = self._statements[key] = stmt.execution_options(preserve_rowcount=True)
        return conn.execute(stmt, self._bind(shared)).rowcount

    def upsert(
        self,
        conn: Connection,
        names: tuple[str, ...],
        shared: Row,
        touched: Row,
        pk: str,
        unique: UniqueKey,
    ) -> list[Any]:
        """Insert the staged rows, updating ``names`` of rows whose key is taken (PostgreSQL).

        One ``INSERT ... ON CONFLICT DO UPDATE`` on the ``unique`` index: the conflicts are
        found through the index rather than a join. Returns each written row's key, primary
        key and whether it was inserted (a row PostgreSQL inserted has no ``xmax``).
        """
        key = ("upsert", names, tuple(shared), tuple(touched))
        stmt = self._statements.get(key)
        if stmt is None:
            source = [self.table.c[n] for n in self.columns]
            source.extend(self._shared(shared).values())
            select = sa.select(*source).order_by(self.table.c[ROW_NUMBER])
            insert = postgresql.insert(self.target).from_select([*self.columns, *shared], select)
            changes: dict[str, Any] = {n: insert.excluded[n] for n in names}
            changes.update(self._shared(touched, "_touched_"))
            keys = [self.target.c[k] for k in self.keys]
            stmt = insert.on_conflict_do_update(
                index_elements=unique.columns,
                index_where=unique.where,
                set_=changes,
                where=sa.and_(*self.where) if self.where else None,
            ).returning(*keys, self.target.c[pk], sa.literal_column("xmax = 0"))
            self._statements[key] = stmt
        params = self._bind(shared)
        params.update(self._bind(touched, "_touched_"))
        return list(conn.execute(stmt, params))

    def matched(self, conn: Connection, pk: str) -> dict[int, Any]:
        """Row number -> primary key of the table row holding that staged row's key."""
        number = self.table.c[ROW_NUMBER]
        on = sa.and_(self.match, *self.narrowing, *self.where)
        stmt = sa.select(number, self.target.c[pk]).join_from(self.table, self.target, on)
        return {n: found for n, found in conn.execute(stmt, self._params)}

    def _shared(self, shared: Row, prefix: str = "_shared_") -> dict[str, Any]:
        """Shared columns as parameters of their columns' types; SQL expressions as they are."""
        return {
            name: value
            if isinstance(value, sa.ClauseElement)
            else sa.bindparam(f"{prefix}{name}", type_=self.target.c[name].type)
            for name, value in shared.items()
        }

    def _bind(self, shared: Row, prefix: str = "_shared_") -> dict[str, Any]:
        """Parameters of a statement: the batch's keys and the shared values."""
        params = dict(self._params)
        for name, value in shared.items():
            if not isinstance(value, sa.ClauseElement):
                params[f"{prefix}{name}"] = value
        return params
