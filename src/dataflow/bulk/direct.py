"""Upserts without a staging table (SQLite): one INSERT ... ON CONFLICT run for every row.

On SQLite ``executemany`` of a prepared statement costs little more than the statement's own
work, so loading a staging table first and joining it would double the cost. The counts come
from reading which keys exist, in scope, just before the write; SQLite's write lock keeps
them true until the transaction ends.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from dataflow.dialects.bulk import BulkLoader, Row

if TYPE_CHECKING:
    from dataflow.statements.model import UniqueKey

Clauses = Sequence[sa.ColumnElement[bool]]


class DirectUpsert:
    """Upserts rows carrying ``columns`` of ``table`` on the unique ``keys``.

    ``unique`` is the index behind the keys; ``changes`` are the columns an existing row
    takes from the new one, ``touched`` the shared columns every update sets (values, each
    also among the inserted shared columns, or SQL expressions such as ``version + 1``).
    """

    def __init__(
        self,
        loader: BulkLoader,
        table: sa.Table,
        keys: tuple[str, ...],
        unique: UniqueKey,
        where: Clauses,
        changes: tuple[str, ...],
        touched: Mapping[str, Any],
        pk: str,
    ) -> None:
        self.loader = loader
        self.table = table
        self.keys = keys
        insert = sqlite.insert(table)
        updates: dict[str, Any] = {name: insert.excluded[name] for name in changes}
        for name, value in touched.items():
            updates[name] = value if isinstance(value, sa.ClauseElement) else insert.excluded[name]
        self.insert = insert.on_conflict_do_update(
            index_elements=unique.columns, index_where=unique.where, set_=updates
        )
        columns = [table.c[k] for k in keys]
        # The keys of a batch travel as one JSON parameter: no batch size meets SQLite's limit
        # on bound parameters, and the statements stay the same from batch to batch.
        given = sa.func.json_each(sa.bindparam("_keys", type_=sa.String)).table_valued("value")
        if len(columns) == 1:
            match = columns[0].in_(sa.select(given.c.value))
        else:
            parts = [sa.func.json_extract(given.c.value, f"$[{i}]") for i in range(len(keys))]
            match = sa.tuple_(*columns).in_(sa.select(*parts))
        held = (match, *unique.domain)
        visible = sa.and_(*where) if where else sa.true()
        self._count = sa.select(sa.func.count(), sa.func.count().filter(visible)).where(*held)
        self._outside = sa.select(*columns).where(*held, sa.not_(visible))
        self._ids = sa.select(*columns, table.c[pk]).where(match, *where)
        self._images = sa.select(table).where(match, *where)

    def taken(self, conn: Connection, rows: list[Row]) -> tuple[int, set[Any]]:
        """How many keys of ``rows`` rows in scope hold, and the keys rows outside it hold."""
        params = self._keys(rows)
        held, held_in_scope = conn.execute(self._count, params).one()
        if held == held_in_scope:
            return held_in_scope, set()
        return held_in_scope, {self._key(found) for found in conn.execute(self._outside, params)}

    def write(self, conn: Connection, rows: list[Row], names: tuple[str, ...], shared: Row) -> None:
        sql, encoded = self.loader.encode(self.table, names, rows, shared, insert=self.insert)
        self.loader.load(conn, sql, encoded)

    def ids(self, conn: Connection, rows: list[Row]) -> dict[Any, Any]:
        """Key -> primary key, for the keys of ``rows``."""
        return {self._key(found): found[-1] for found in conn.execute(self._ids, self._keys(rows))}

    def images(self, conn: Connection, rows: list[Row]) -> dict[Any, Row]:
        """Key -> the row in scope holding it, for the keys of ``rows``."""
        found = conn.execute(self._images, self._keys(rows)).mappings()
        return {self._key([row[k] for k in self.keys]): dict(row) for row in found}

    def _key(self, found: Sequence[Any]) -> Any:
        return found[0] if len(self.keys) == 1 else tuple(found[: len(self.keys)])

    def _keys(self, rows: list[Row]) -> dict[str, str]:
        """The keys of ``rows`` as stored, in the one JSON parameter of ``_match``."""
        stored = []
        for name in self.keys:
            values = [row[name] for row in rows]
            process = self.loader.processor(self.table, name)
            stored.append(values if process is None else [process(v) for v in values])
        payload = stored[0] if len(stored) == 1 else [list(k) for k in zip(*stored, strict=True)]
        return {"_keys": json.dumps(payload)}
