"""The statements behind the generated nodes, for one model on one database.

Every statement passes through the model's features (``dataflow.features``): reads, counts,
updates and deletes carry their WHERE clauses, inserts and updates their stamps; a delete
becomes an update where the model soft-deletes, and the features that keep a history (the
audit log) get each change's before and after images, in the statement's transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dataflow.dialects import Dialect
from dataflow.errors import IntegrityError
from dataflow.features.base import Feature, Image, Scope
from dataflow.features.soft_delete import SoftDelete
from dataflow.features.versioning import Versioning
from dataflow.models.spec import ModelSpec
from dataflow.models.types import utcnow
from dataflow.schema.tables import unique_fields, unique_where
from dataflow.statements.results import RowBuilder, row_builder

if TYPE_CHECKING:
    import datetime as dt

    from dataflow.query.aggregate import Aggregation
    from dataflow.query.filters import Filter

#: Why an upsert may not take over the row holding its key.
OUTSIDE = (
    "its key belongs to a row this operation may not change (a soft-deleted row, or one "
    "outside its tenant); restore or remove that row first"
)


@dataclass(frozen=True, slots=True)
class UniqueKey:
    """A unique key as the database holds it, for one operation."""

    #: The index's columns: the conflict target of an upsert.
    columns: tuple[sa.Column[Any], ...]
    #: The partial index's predicate, which ON CONFLICT must repeat to find the index.
    where: sa.ColumnElement[bool] | None
    #: The rows whose key can clash with a row this operation inserts.
    domain: tuple[sa.ColumnElement[bool], ...]


class ModelStatements:
    """Builds and runs one model's statements; values arrive validated and coerced."""

    def __init__(self, spec: ModelSpec, dialect: Dialect) -> None:
        self.spec = spec
        self.dialect = dialect
        table = spec.t
        self.table = table
        self.pk = table.c[spec.primary_key]
        self.columns = tuple(table.c)
        self.features = tuple(spec.features)
        self.soft_delete = spec.feature(SoftDelete)
        self.versioning = spec.feature(Versioning)
        #: Features that keep each change's images (the audit log).
        self.historians = [f for f in self.features if f.images]
        self._by_pk = self.pk == sa.bindparam("_pk")
        self._by_id = sa.select(table).where(self._by_pk)
        self._lock = self._by_id.with_for_update()
        self._insert = table.insert()
        self._insert_returning = self._insert.returning(*self.columns)
        self._delete = table.delete().where(self._by_pk)
        self._count = sa.select(sa.func.count()).select_from(table)
        self._updates: dict[tuple[Any, ...], Any] = {}
        self._selects: dict[tuple[Any, ...], tuple[sa.Select[Any], Any, Any]] = {}
        self._row_builders: dict[tuple[str, ...] | None, RowBuilder] = {}
        self._scoped: dict[tuple[int, ...], tuple[Any, Any, list[Any]]] = {}
        # Features fill their own columns once per statement, not row by row.
        self._defaults = [(n, f) for n, f in spec.fields.items() if f.has_default and not f.managed]
        # Features with row-by-row hooks; the others only set columns shared by a whole batch.
        self._row_inserts = [f for f in self.features if _overrides(f, "on_insert")]
        self._row_updates = [f for f in self.features if _overrides(f, "on_update")]
        self._accepting = [f for f in self.features if _overrides(f, "accept")]
        self._partial = unique_where(spec, table) if dialect.partial_indexes else None

    # -- the pipeline ---------------------------------------------------------------------

    def where(
        self, scope: Scope, filter: Filter | None = None, table: sa.FromClause | None = None
    ) -> list[sa.ColumnElement[bool]]:
        """The clauses the features add to every read, count, update and delete, then the filter's.

        ``table`` is an alias of the model's table when the model is reached through a relation.
        """
        target = self.table if table is None else table
        clauses: list[sa.ColumnElement[bool]] = []
        for feature in self.features:
            clauses.extend(feature.where(target, scope))
        if filter:
            clauses.extend(filter.clauses(scope))
        return clauses

    def accept(self, rows: Sequence[dict[str, Any]], indexes: Sequence[int], scope: Scope) -> None:
        """Check and take out what input rows gave for the features' columns (``tenant_id``)."""
        for feature in self._accepting:
            feature.accept(rows, indexes, scope)

    def stamp_insert(self, values: dict[str, Any], scope: Scope) -> dict[str, Any]:
        """A row ready to insert: defaults filled, the features' columns set."""
        row = dict(values)
        row.update(self.stamp_insert_batch([row], scope))
        return row

    def stamp_update(self, values: dict[str, Any], scope: Scope) -> dict[str, Any]:
        """Changes ready to apply: the features' columns added."""
        changes = dict(values)
        changes.update(self.stamp_update_batch([changes], scope))
        return changes

    def stamp_insert_batch(self, rows: list[dict[str, Any]], scope: Scope) -> dict[str, Any]:
        """Fill defaults and per-row feature columns of rows to insert, in place, at one ``now``.

        Returns the columns every row shares, for the caller to set once per statement.
        """
        now = utcnow()
        for name, field in self._defaults:
            for row in rows:
                if name not in row:
                    row[name] = field.default_value()
        for feature in self._row_inserts:
            for row in rows:
                feature.on_insert(row, scope, now)
        shared: dict[str, Any] = {}
        for feature in self.features:
            shared.update(feature.insert_values(scope, now))
        return shared

    def stamp_update_batch(
        self, rows: list[dict[str, Any]], scope: Scope, now: dt.datetime | None = None
    ) -> dict[str, Any]:
        """Add per-row feature columns to the changes of rows, in place, at one ``now``.

        Returns the columns every row's update sets (values, or SQL expressions such as
        ``version + 1``), for the caller to set once per statement.
        """
        now = now or utcnow()
        for feature in self._row_updates:
            for row in rows:
                feature.on_update(row, scope, now)
        shared: dict[str, Any] = {}
        for feature in self.features:
            shared.update(feature.update_values(self.table, scope, now))
        return shared

    def soft_delete_values(self, scope: Scope) -> dict[str, Any]:
        """What a soft delete sets: the features' delete columns and every update's stamps."""
        now = utcnow()
        values = self.stamp_update_batch([], scope, now)
        for feature in self.features:
            values.update(feature.delete_values(scope, now))
        return values

    def unique_key(self, keys: Sequence[str], scope: Scope) -> UniqueKey:
        """The unique index behind ``keys`` (a unique set of the model) for this operation."""
        names = unique_fields(self.spec, tuple(keys))
        if names == (self.spec.primary_key,):
            return UniqueKey((self.pk,), None, ())
        fixed = {}
        for feature in self.features:
            fixed.update(feature.insert_values(scope, utcnow()))
        domain = [self.table.c[n] == fixed[n] for n in names if n not in keys]
        if self._partial is not None:
            domain.append(self._partial)
        return UniqueKey(tuple(self.table.c[n] for n in names), self._partial, tuple(domain))

    def record(self, conn: Connection, scope: Scope, action: str, images: list[Image]) -> None:
        """Hand one statement's changes to the features that keep them (the audit log)."""
        for feature in self.historians:
            feature.record(conn, scope, action, images)

    def outside(self, scope: Scope, row: int | None = None) -> IntegrityError:
        """The error for a key held by a row the operation may not change."""
        at = f": row {row}" if row is not None else ""
        return IntegrityError(f"{scope.label}{at}: {OUTSIDE}", row=row)

    # -- single records -------------------------------------------------------------------

    def insert(self, conn: Connection, values: dict[str, Any], scope: Scope) -> dict[str, Any]:
        found = self._insert_row(conn, self.stamp_insert(values, scope), scope)
        if self.historians:
            self.record(conn, scope, "create", [Image(found[self.pk.name], None, found)])
        return found

    def get(
        self, conn: Connection, pk: Any, scope: Scope, lock: bool = False
    ) -> dict[str, Any] | None:
        """The row with this primary key in scope; ``lock`` holds it until the transaction ends."""
        stmt = self.scoped(self._lock if lock else self._by_id, self.where(scope))
        found = conn.execute(stmt, {"_pk": pk}).mappings().first()
        return dict(found) if found is not None else None

    def update(
        self,
        conn: Connection,
        pk: Any,
        values: dict[str, Any],
        scope: Scope,
        version: int | None = None,
    ) -> dict[str, Any] | None:
        """Apply ``values`` to the row; with ``version``, only if the row is still at it."""
        changes = self.stamp_update(values, scope)
        old = None
        if self.historians:
            old = self.get(conn, pk, scope, lock=True)
            if old is None:
                return None
        found = self._write(conn, pk, changes, scope, version)
        if found is None:
            if version is not None:
                self._check_version(conn, pk, version, scope)
            return None
        if old is not None:
            self.record(conn, scope, "update", [Image(pk, old, found)])
        return found

    def delete(self, conn: Connection, pk: Any, scope: Scope, soft: bool = False) -> bool:
        """Delete the row, or with ``soft`` mark it deleted; False if it is not in scope."""
        old = None
        if self.historians:
            old = self.get(conn, pk, scope, lock=True)
            if old is None:
                return False
        params = {"_pk": pk}
        stmt = self._delete
        if soft:
            values = self.soft_delete_values(scope)
            plain, expressions = _split(values)
            stmt = self._update_statement(tuple(plain), expressions, returning=False)
            params.update(plain)
        if not conn.execute(self.scoped(stmt, self.where(scope)), params).rowcount:
            return False
        if old is not None:
            new = {**old, **values} if soft else None
            self.record(conn, scope, "soft_delete" if soft else "delete", [Image(pk, old, new)])
        return True

    def restore(self, conn: Connection, pk: Any, scope: Scope) -> dict[str, Any] | None:
        """Bring a soft-deleted row back (a live row is returned as it is); None if absent."""
        soft = self.soft_delete
        assert soft is not None, f"{self.spec.name} has no soft delete"
        seen = dataclasses.replace(scope, include_deleted=True)
        old = self.get(conn, pk, seen, lock=True)
        if old is None or not soft.is_deleted(old):
            return old
        changes = self.stamp_update(soft.restore_values(), scope)
        found = self._write(conn, pk, changes, seen)
        assert found is not None, "a row locked in this transaction is still there"
        self.record(conn, scope, "restore", [Image(pk, old, found)])
        return found

    def reinsert(self, conn: Connection, row: dict[str, Any], scope: Scope) -> dict[str, Any]:
        """Put a deleted row back: its id, values and ``created_at``; recorded as a restore."""
        values = {n: row[n] for n in self.spec.writable if n in row}
        values[self.pk.name] = row[self.pk.name]
        stamped = self.stamp_insert(values, scope)
        stamped["created_at"] = row["created_at"]
        if self.soft_delete is not None:
            stamped["deleted_at"] = row["deleted_at"]  # a purged deleted row comes back deleted
        if self.versioning is not None:
            stamped["version"] = row["version"] + 1  # a write happened since the version read
        found = self._insert_row(conn, stamped, scope)
        if self.historians:
            self.record(conn, scope, "restore", [Image(found[self.pk.name], None, found)])
        return found

    def upsert(
        self, conn: Connection, values: dict[str, Any], conflict_on: Sequence[str], scope: Scope
    ) -> dict[str, Any]:
        """Insert the row, or update the one in scope holding its key; never another one."""
        row = self.stamp_insert(values, scope)
        key = self.unique_key(conflict_on, scope)
        keep = {*conflict_on, self.pk.name}
        changes = {k: row[k] for k in values if k not in keep}
        changes.update(self.stamp_update_batch([], scope))
        if not self.dialect.upsert_returning or self.historians:
            return self._upsert_in_steps(conn, row, changes, key, scope)
        insert: Any = self.dialect.insert(self.table).values(row)
        where = self.where(scope)
        stmt = insert.on_conflict_do_update(
            index_elements=key.columns,
            index_where=key.where,
            set_=changes,
            where=sa.and_(*where) if where else None,
        ).returning(*self.columns)
        try:
            found = conn.execute(stmt).mappings().first()
        except sa.exc.DBAPIError as exc:
            if self.dialect.policy_refused(exc):  # the row holding the key is out of scope
                raise self.outside(scope) from None
            raise
        if found is None:
            raise self.outside(scope)
        return dict(found)

    def _upsert_in_steps(
        self,
        conn: Connection,
        row: dict[str, Any],
        changes: dict[str, Any],
        key: UniqueKey,
        scope: Scope,
    ) -> dict[str, Any]:
        """Lock the row holding the key, then update it or insert a new one.

        MySQL's ``ON DUPLICATE KEY UPDATE`` would update whichever row clashed on any unique
        key, and an audited upsert needs the row's image before it changes.
        """
        where = self.where(scope)
        visible = (sa.and_(*where) if where else sa.true()).label("_visible")
        match = [c == row[c.name] for c in key.columns]
        if key.where is not None:
            match.append(key.where)
        stmt = sa.select(*self.columns, visible).where(*match).with_for_update()
        held = conn.execute(stmt).mappings().first()
        if held is None:
            created = self._insert_row(conn, row, scope)
            if self.historians:
                self.record(conn, scope, "create", [Image(created[self.pk.name], None, created)])
            return created
        if not held["_visible"]:
            raise self.outside(scope)
        old = {c.name: held[c.name] for c in self.columns}
        pk = old[self.pk.name]
        found = self._write(conn, pk, changes, scope)
        assert found is not None, "a row locked in this transaction is still there"
        if self.historians:
            self.record(conn, scope, "update", [Image(pk, old, found)])
        return found

    def _insert_row(self, conn: Connection, row: dict[str, Any], scope: Scope) -> dict[str, Any]:
        if conn.dialect.insert_returning:
            return dict(conn.execute(self._insert_returning, row).mappings().one())
        result = conn.execute(self._insert, row)
        return self._fetch(conn, row.get(self.spec.primary_key, result.lastrowid), scope)

    def _write(
        self,
        conn: Connection,
        pk: Any,
        changes: dict[str, Any],
        scope: Scope,
        version: int | None = None,
    ) -> dict[str, Any] | None:
        """One UPDATE of the row by primary key (and version); the row after it, or None."""
        params, expressions = _split(changes)
        returning = conn.dialect.update_returning
        stmt = self._update_statement(tuple(params), expressions, returning, version is not None)
        stmt = self.scoped(stmt, self.where(scope))
        params["_pk"] = pk
        if version is not None:
            params["_version"] = version
        if returning:
            found = conn.execute(stmt, params).mappings().first()
            return dict(found) if found is not None else None
        if conn.execute(stmt, params).rowcount == 0:
            return None
        return self.get(conn, pk, scope)

    def _check_version(self, conn: Connection, pk: Any, version: int, scope: Scope) -> None:
        """After a conditional update changed nothing: a conflict if the row is still there."""
        assert self.versioning is not None, f"{self.spec.name} is not versioned"
        column = self.table.c["version"]
        stmt = sa.select(column).where(self._by_pk, *self.where(scope))
        current = conn.execute(stmt, {"_pk": pk}).scalar()
        if current is not None:
            raise self.versioning.conflict(scope.label, pk, version, current)

    # -- many records ---------------------------------------------------------------------

    def select(
        self,
        conn: Connection,
        scope: Scope,
        filter: Filter | None = None,
        order: Sequence[sa.ColumnElement[Any]] = (),
        limit: int | None = None,
        offset: int = 0,
        fields: Sequence[str] | None = None,
        after: sa.ColumnElement[bool] | None = None,
    ) -> list[dict[str, Any]]:
        """Matching rows in ``order`` (by primary key without one), from ``after`` on."""
        # A statement that does not depend on the scope is built once: building it costs
        # about a third of a short list on SQLite. ``filter`` and ``order`` are the checked
        # (and memoized) parameters, the same objects each run.
        key = None
        if after is None and (filter is None or filter.fixed):
            key = (id(filter), id(order), limit, offset, tuple(fields) if fields else None)
        found = self._selects.get(key) if key else None
        if found is not None:
            stmt = found[0]
        else:
            stmt = self._select(filter, order, limit, offset, fields, after, scope)
            if key:
                if len(self._selects) >= 256:
                    self._selects.clear()
                self._selects[key] = (stmt, filter, order)  # they stay alive: ids stay theirs
        result = conn.execute(self.scoped(stmt, self.where(scope)))
        if self.dialect.rows_from_cursor:
            names = tuple(fields) if fields else None
            build = self._row_builders.get(names)
            if build is None:
                if len(self._row_builders) >= 256:
                    self._row_builders.clear()
                columns = list(stmt.selected_columns)
                build = self._row_builders[names] = row_builder(columns, conn.dialect)
            dbapi_error = conn.dialect.loaded_dbapi.Error
            try:
                rows = result.cursor.fetchall()
            except dbapi_error as exc:
                # Straight from the driver's cursor: its error becomes SQLAlchemy's, as an
                # error of execute() does, for the translation into a DataFlow error.
                raise sa.exc.DBAPIError.instance(None, None, exc, dbapi_error) from exc
            result.close()
            return build(rows)
        # map() keeps the per-row work in C: a third faster than a comprehension here.
        return list(map(dict, map(zip, repeat(tuple(result.keys())), result.all())))

    def _select(
        self,
        filter: Filter | None,
        order: Sequence[sa.ColumnElement[Any]],
        limit: int | None,
        offset: int,
        fields: Sequence[str] | None,
        after: sa.ColumnElement[bool] | None,
        scope: Scope,
    ) -> sa.Select[Any]:
        columns = [self.table.c[f] for f in fields] if fields else self.columns
        stmt = sa.select(*columns).where(*(filter.clauses(scope) if filter else ()))
        if after is not None:
            stmt = stmt.where(after)
        stmt = stmt.order_by(*(order or (self.pk,)))
        if limit is not None:
            stmt = stmt.limit(limit)
        return stmt.offset(offset) if offset else stmt

    def count(self, conn: Connection, scope: Scope, filter: Filter | None = None) -> int:
        stmt = self.scoped(self._count, self.where(scope, filter))
        return int(conn.execute(stmt).scalar_one())

    def aggregate(
        self, conn: Connection, scope: Scope, filter: Filter | None, plan: Aggregation
    ) -> list[dict[str, Any]]:
        return plan.run(conn, self.table, self.where(scope, filter), scope)

    # -- helpers --------------------------------------------------------------------------

    def scoped(self, stmt: Any, where: list[sa.ColumnElement[bool]]) -> Any:
        """``stmt`` with ``where`` added: the same object for the same statement and clauses.

        Features hand out one clause object per table and tenant, and SQLAlchemy keeps a
        statement's cache key on the statement; reusing the object skips rebuilding both.
        """
        if not where:
            return stmt
        key = (id(stmt), *map(id, where))
        found = self._scoped.get(key)
        if found is None:
            if len(self._scoped) >= 1024:
                self._scoped.clear()
            # The entry holds the statement and the clauses, so their ids stay theirs.
            found = self._scoped[key] = (stmt.where(*where), stmt, where)
        return found[0]

    def _update_statement(
        self,
        names: tuple[str, ...],
        expressions: dict[str, Any],
        returning: bool,
        versioned: bool = False,
    ) -> Any:
        """UPDATE ... WHERE pk (and version) setting bound ``names`` and the features' SQL.

        A feature's expression for a column is the same on every call (``version + 1``), so
        the statement is built once per set of names.
        """
        key = (names, tuple(expressions), returning, versioned)
        stmt = self._updates.get(key)
        if stmt is None:
            stmt = sa.update(self.table).where(self._by_pk)
            if versioned:
                stmt = stmt.where(self.table.c["version"] == sa.bindparam("_version"))
            values = {n: sa.bindparam(n, type_=self.table.c[n].type) for n in names}
            stmt = stmt.values({**values, **expressions})
            if returning:
                stmt = stmt.returning(*self.columns)
            self._updates[key] = stmt
        return stmt

    def _fetch(self, conn: Connection, pk: Any, scope: Scope) -> dict[str, Any]:
        found = self.get(conn, pk, scope)
        assert found is not None, "a row written in this transaction is readable in it"
        return found


def _split(changes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Changes as values to bind, and the SQL expressions among them (``version + 1``)."""
    values: dict[str, Any] = {}
    expressions: dict[str, Any] = {}
    for name, value in changes.items():
        if isinstance(value, sa.ClauseElement):
            expressions[name] = value
        else:
            values[name] = value
    return values, expressions


def _overrides(feature: Feature, hook: str) -> bool:
    return getattr(type(feature), hook) is not getattr(Feature, hook)
