"""The statement pipeline: model options that add columns and shape every statement.

Each option (timestamps, and later tenancy, soft delete, versioning, audit) is one Feature in
one module. ``Records`` asks a model's features for extra WHERE clauses on every read, update
and delete, and lets them stamp every inserted row and every change. A feature says which
columns take one value for a whole statement (``insert_values``, ``update_values``), so that
bulk writes set them once per batch, and which it must compute row by row (``on_insert``,
``on_update``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlalchemy as sa

    from dataflow.models.spec import FieldSpec


@dataclass(slots=True)
class Scope:
    """Who one operation acts for and what it may see."""

    #: Names the operation in errors, e.g. ``UserListNode 'list'``.
    label: str = ""
    include_deleted: bool = False
    tenant_id: Any = None
    actor: Any = None


class Feature:
    """A model option. Every hook has a do-nothing default."""

    def fields(self) -> list[FieldSpec]:
        """Columns the feature adds to the model (marked ``managed``)."""
        return []

    def where(self, table: sa.FromClause, scope: Scope) -> list[sa.ColumnElement[bool]]:
        """Clauses every read, count, update and delete of the model must also satisfy.

        ``table`` is the model's table, or an alias of it inside a relation filter.
        """
        return []

    def insert_values(self, scope: Scope, now: dt.datetime) -> dict[str, Any]:
        """Columns set on every inserted row, the same for all rows of one statement."""
        return {}

    def on_insert(self, row: dict[str, Any], scope: Scope, now: dt.datetime) -> None:
        """Fill the feature's columns that differ from row to row (before ``insert_values``)."""

    def update_values(self, scope: Scope, now: dt.datetime) -> dict[str, Any]:
        """Columns every update sets, the same for all rows (values or SQL expressions)."""
        return {}

    def on_update(self, changes: dict[str, Any], scope: Scope, now: dt.datetime) -> None:
        """Add the feature's columns that depend on each change (before ``update_values``)."""
