"""The statement pipeline: model options that add columns and shape every statement.

Each option (timestamps, tenancy, soft delete, versioning, audit) is one Feature in one
module. ``Records`` asks a model's features for extra WHERE clauses on every read, update
and delete, and lets them stamp every inserted row and every change. A feature says which
columns take one value for a whole statement (``insert_values``, ``update_values``), so that
bulk writes set them once per batch, and which it must compute row by row (``on_insert``,
``on_update``). Unique keys take the feature's key columns and partial-index predicate
(``key_fields``, ``index_where``); a feature that keeps a history gets each change's before
and after images (``images``, ``record``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.engine import Connection

    from dataflow.models.spec import FieldSpec


@dataclass(slots=True)
class Scope:
    """Who one operation acts for and what it may see."""

    #: Names the operation in errors, e.g. ``UserListNode 'list'``.
    label: str = ""
    include_deleted: bool = False
    tenant_id: Any = None
    actor: Any = None


@dataclass(frozen=True, slots=True)
class Image:
    """One written row before and after a change (None: it did not exist / no longer does)."""

    record_id: Any
    old: dict[str, Any] | None
    new: dict[str, Any] | None


class Feature:
    """A model option. Every hook has a do-nothing default."""

    #: The ``__dataflow__`` option that turns the feature on ("" for built-in ones).
    option: ClassVar[str] = ""
    #: Whether the feature wants the before and after image of every change (``record``).
    images: ClassVar[bool] = False

    def fields(self) -> list[FieldSpec]:
        """Columns the feature adds to the model (marked ``managed``)."""
        return []

    def key_fields(self) -> tuple[str, ...]:
        """Columns that join every unique key of the model besides the primary key."""
        return ()

    def index_where(self, table: sa.Table) -> sa.ColumnElement[bool] | None:
        """The rows a unique key holds for, where the database has partial indexes."""
        return None

    def where(self, table: sa.FromClause, scope: Scope) -> list[sa.ColumnElement[bool]]:
        """Clauses every read, count, update and delete of the model must also satisfy.

        ``table`` is the model's table, or an alias of it inside a relation filter.
        """
        return []

    def accept(self, rows: Sequence[dict[str, Any]], indexes: Sequence[int], scope: Scope) -> None:
        """Check the values input rows gave for the feature's columns, and take them out."""

    def insert_values(self, scope: Scope, now: dt.datetime) -> dict[str, Any]:
        """Columns set on every inserted row, the same for all rows of one statement."""
        return {}

    def on_insert(self, row: dict[str, Any], scope: Scope, now: dt.datetime) -> None:
        """Fill the feature's columns that differ from row to row (before ``insert_values``)."""

    def update_values(self, table: sa.Table, scope: Scope, now: dt.datetime) -> dict[str, Any]:
        """Columns every update sets, the same for all rows (values or SQL expressions)."""
        return {}

    def on_update(self, changes: dict[str, Any], scope: Scope, now: dt.datetime) -> None:
        """Add the feature's columns that depend on each change (before ``update_values``)."""

    def delete_values(self, scope: Scope, now: dt.datetime) -> dict[str, Any]:
        """Columns a soft delete sets; a feature returning some turns deletes into updates."""
        return {}

    def sync(self, conn: Connection, table: sa.Table) -> list[str]:
        """Database objects the feature keeps beside the table (after it is created or synced)."""
        return []

    def record(self, conn: Connection, scope: Scope, action: str, images: list[Image]) -> None:
        """Keep the images of one statement's changes (``images`` features only)."""
