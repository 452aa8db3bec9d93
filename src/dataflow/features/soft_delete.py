"""``soft_delete``: a ``deleted_at`` column; deletes set it and reads leave those rows out.

Deleted rows stay in the table. Every read, count, aggregate, relation filter, update and
delete skips them unless the operation asks for ``include_deleted``; a restore clears the
column. Unique keys hold among live rows only where the database has partial indexes
(PostgreSQL and SQLite: ``... WHERE deleted_at IS NULL``); on MariaDB, which has none, a
deleted row keeps its unique key.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from dataflow.features.base import Feature, Scope
from dataflow.models.spec import FieldSpec
from dataflow.models.types import FIELD_TYPES

COLUMN = "deleted_at"


class SoftDelete(Feature):
    option = "soft_delete"

    def __init__(self) -> None:
        # One clause object per table (or relation alias): statements carrying it are reused.
        self._live: dict[sa.FromClause, sa.ColumnElement[bool]] = {}

    def fields(self) -> list[FieldSpec]:
        return [FieldSpec(COLUMN, FIELD_TYPES[dt.datetime], nullable=True, managed=True)]

    def index_where(self, table: sa.Table) -> sa.ColumnElement[bool] | None:
        return table.c[COLUMN].is_(None)

    def where(self, table: sa.FromClause, scope: Scope) -> list[sa.ColumnElement[bool]]:
        if scope.include_deleted:
            return []
        clause = self._live.get(table)
        if clause is None:
            if len(self._live) >= 1024:
                self._live.clear()
            clause = self._live[table] = table.c[COLUMN].is_(None)
        return [clause]

    def delete_values(self, scope: Scope, now: dt.datetime) -> dict[str, Any]:
        return {COLUMN: now}

    def is_deleted(self, row: dict[str, Any]) -> bool:
        return row.get(COLUMN) is not None

    def restore_values(self) -> dict[str, Any]:
        """The change a restore makes."""
        return {COLUMN: None}
