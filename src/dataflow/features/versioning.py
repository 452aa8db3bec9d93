"""``versioned``: a ``version`` column for optimistic locking.

A row starts at version 1 and every update adds one, in the statement that changes the row
(single, bulk, upsert, soft delete and restore alike). An update that names the version it
read is one conditional statement, ``... WHERE id = :id AND version = :version``: no read
happens between the check and the write, so two writers holding the same version cannot
both succeed. The loser gets ``VersionConflictError`` carrying the current version.

``'versioned': {'require_version': True}`` makes every update name its version: Update
requires ``version``, BulkUpdate rows must each carry one, and the writes that cannot name
one per row (filter updates, upserts) are refused.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from dataflow.errors import VersionConflictError
from dataflow.features.base import Feature, Scope
from dataflow.models.spec import FieldSpec
from dataflow.models.types import FIELD_TYPES, Refused

COLUMN = "version"


def check_version(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise Refused(f"the version the record was read at (an int from 1), got {value!r}")


class Versioning(Feature):
    option = "versioned"

    def __init__(self, model: str, require: bool) -> None:
        self.model = model
        #: Every update must name the version it read.
        self.require = require
        self._next: sa.ColumnElement[int] | None = None

    def fields(self) -> list[FieldSpec]:
        return [FieldSpec(COLUMN, FIELD_TYPES[int], default=1, managed=True)]

    def insert_values(self, scope: Scope, now: dt.datetime) -> dict[str, Any]:
        return {COLUMN: 1}

    def update_values(self, table: sa.Table, scope: Scope, now: dt.datetime) -> dict[str, Any]:
        if self._next is None:
            # An inline 1, not a bound one: bulk writes compile this into driver-level SQL
            # whose parameters are the rows' values.
            self._next = table.c[COLUMN] + sa.literal_column("1")
        return {COLUMN: self._next}

    def conflict(
        self, label: str, record_id: Any, expected: int, current: int, row: int | None = None
    ) -> VersionConflictError:
        where = f"row {row}: " if row is not None else ""
        return VersionConflictError(
            f"{label}: {where}{self.model} {record_id!r} is at version {current}, not "
            f"{expected}: it changed since it was read. Read it again and retry with version "
            f"{current}.",
            model=self.model,
            record_id=record_id,
            current_version=current,
            row=row,
        )
