"""``multi_tenant``: a ``tenant_id`` column, and every statement kept to one tenant.

Reads, counts, aggregates, relation filters, updates and deletes carry ``tenant_id = :tenant``;
inserted rows take the operation's tenant; the column joins every unique key, so an upsert can
only ever meet a row of its own tenant. ``tenant_isolation="strict"`` (the default) refuses an
operation without a tenant; ``"permissive"`` lets it read and change every tenant's rows (it
still cannot insert one: a row belongs to a tenant).

On PostgreSQL the tables also get a row-level security policy keyed on the transaction's
``dataflow.tenant_id`` setting, which DataFlow sets (``set_config(..., true)``, the function
form of ``SET LOCAL``) before each node's statements. The policy is FORCEd, so it binds the
tables' owner too; only superusers and roles with BYPASSRLS pass it by.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from itertools import repeat
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dataflow.dialects import dialect_named
from dataflow.errors import TenantIsolationError
from dataflow.features.base import Feature, Scope
from dataflow.models.spec import FieldSpec
from dataflow.models.types import FIELD_TYPES, Refused

COLUMN = "tenant_id"
POLICY = "dataflow_tenant_isolation"
#: The transaction settings the policy reads.
TENANT_SETTING = "dataflow.tenant_id"
ALL_TENANTS_SETTING = "dataflow.all_tenants"

_BIND = sa.select(
    sa.func.set_config(TENANT_SETTING, sa.bindparam("tenant", type_=sa.Text), True),
    sa.func.set_config(ALL_TENANTS_SETTING, sa.bindparam("all", type_=sa.Text), True),
)


def check_tenant(value: Any) -> str:
    """A tenant id: a non-empty str."""
    if isinstance(value, str) and value.strip():
        return value
    raise Refused(f"a tenant id (a non-empty str), got {value!r}")


class Tenancy(Feature):
    option = "multi_tenant"

    def __init__(self, model: str, strict: bool) -> None:
        self.model = model
        self.strict = strict
        # The same clause object for a table and tenant each time, so the statements that
        # carry it are built (and their SQLAlchemy cache keys made) once.
        self._clauses: dict[tuple[sa.FromClause, str], sa.ColumnElement[bool]] = {}

    def fields(self) -> list[FieldSpec]:
        return [FieldSpec(COLUMN, FIELD_TYPES[str], managed=True, indexed=True)]

    def key_fields(self) -> tuple[str, ...]:
        return (COLUMN,)

    def where(self, table: sa.FromClause, scope: Scope) -> list[sa.ColumnElement[bool]]:
        tenant = scope.tenant_id
        if tenant is not None:
            clause = self._clauses.get((table, tenant))
            if clause is None:
                if len(self._clauses) >= 1024:
                    self._clauses.clear()
                clause = self._clauses[table, tenant] = table.c[COLUMN] == tenant
            return [clause]
        if self.strict:
            raise missing_tenant(scope.label, self.model)
        return []

    def accept(self, rows: Sequence[dict[str, Any]], indexes: Sequence[int], scope: Scope) -> None:
        if not any(map(dict.__contains__, rows, repeat(COLUMN))):
            return
        for row, index in zip(rows, indexes, strict=True):
            given = row.pop(COLUMN, scope.tenant_id)
            if given != scope.tenant_id:
                raise TenantIsolationError(
                    f"{scope.label}: row {index} names tenant {given!r}, but the operation acts "
                    f"for {_tenant(scope)}; leave tenant_id out of the rows"
                )

    def insert_values(self, scope: Scope, now: dt.datetime) -> dict[str, Any]:
        if scope.tenant_id is None:
            raise TenantIsolationError(
                f"{scope.label}: a new {self.model} row belongs to a tenant, and this operation "
                "has none. " + _HOW
            )
        return {COLUMN: scope.tenant_id}

    def sync(self, conn: Connection, table: sa.Table) -> list[str]:
        return enable_row_security(conn, table)


_HOW = (
    "Pass tenant_id to the node, run it inside `with db.tenant('t1'):`, or give "
    "runtime.execute(..., parameters={'tenant_id': 't1'})"
)


def _tenant(scope: Scope) -> str:
    return "every tenant" if scope.tenant_id is None else f"tenant {scope.tenant_id!r}"


def missing_tenant(label: str, model: str) -> TenantIsolationError:
    return TenantIsolationError(
        f"{label}: {model} is multi-tenant and this operation has no tenant. {_HOW}"
    )


def filter_tenant(scope: Scope, named: Any, at: str) -> bool | None:
    """True when a filter's ``tenant_id`` names the operation's tenant; refused otherwise.

    None when the operation has no tenant (``tenant_isolation="permissive"``): the condition
    is then an ordinary comparison of the column.
    """
    if scope.tenant_id is None:
        return None
    if named != scope.tenant_id:
        raise TenantIsolationError(
            f"{scope.label}: {at} names tenant {named!r}, but the operation acts for "
            f"{_tenant(scope)}; leave tenant_id out of the filter"
        )
    return True


# -- PostgreSQL row-level security ----------------------------------------------------------


def _condition(null_ok: bool) -> str:
    condition = (
        f"{COLUMN} = current_setting('{TENANT_SETTING}', true) "
        f"OR current_setting('{ALL_TENANTS_SETTING}', true) = 'on'"
    )
    return f"{COLUMN} IS NULL OR {condition}" if null_ok else condition


def enable_row_security(conn: Connection, table: sa.Table, null_ok: bool = False) -> list[str]:
    """Enable and force row-level security on ``table`` with DataFlow's tenant policy.

    ``null_ok`` lets every tenant see rows without a tenant (the audit log's rows of models
    that are not multi-tenant).
    """
    if not dialect_named(conn.dialect.name).row_security:
        return []
    name = conn.dialect.identifier_preparer.format_table(table)
    state = conn.execute(
        sa.text(
            "SELECT c.relrowsecurity, c.relforcerowsecurity, EXISTS (SELECT 1 FROM pg_policy p "
            "WHERE p.polrelid = c.oid AND p.polname = :policy) FROM pg_class c "
            "WHERE c.oid = to_regclass(:name)"
        ),
        {"policy": POLICY, "name": name},
    ).one()
    done = []
    if not state[0]:
        conn.exec_driver_sql(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY")
    if not state[1]:
        conn.exec_driver_sql(f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY")
    if not state[2]:
        condition = _condition(null_ok)
        conn.exec_driver_sql(
            f"CREATE POLICY {POLICY} ON {name} USING ({condition}) WITH CHECK ({condition})"
        )
    if not all(state):
        done.append(f"enabled row-level security on {table.name}")
    return done


def bind_tenant(conn: Connection, tenant_id: str | None, all_tenants: bool) -> None:
    """Set the transaction's tenant for the row-level security policies (PostgreSQL)."""
    conn.execute(_BIND, {"tenant": tenant_id or "", "all": "on" if all_tenants else ""})
