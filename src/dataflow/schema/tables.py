"""ModelSpec -> SQLAlchemy Table."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import sqlalchemy as sa

from dataflow.models.spec import FieldSpec, ModelSpec


def _server_default(field: FieldSpec) -> Any:
    """A literal server default, so a column added to a populated table fills existing rows."""
    if not field.has_default or field.default is None:
        return None
    value = field.default
    kind = field.type.name
    if kind == "bool":
        return sa.true() if value else sa.false()
    if kind in ("int", "float", "Decimal"):
        return sa.text(str(value))
    if kind == "str":
        return value
    if kind == "date":
        return value.isoformat()
    if kind == "datetime":
        return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
    return json.dumps(value)


def column_for(field: FieldSpec) -> sa.Column[Any]:
    """The column a field is stored in."""
    kwargs: dict[str, Any] = {"nullable": field.nullable}
    if field.primary_key:
        kwargs["primary_key"] = True
        kwargs["autoincrement"] = field.autoincrement
    server_default = _server_default(field)
    if server_default is not None:
        kwargs["server_default"] = server_default
    return sa.Column(field.name, field.type.column(), **kwargs)


def unique_fields(spec: ModelSpec, fields: tuple[str, ...]) -> tuple[str, ...]:
    """The columns of a unique key as the database holds it: the features' key columns first.

    The primary key stays as it is; every other unique key of a multi-tenant model starts
    with ``tenant_id``, so each tenant has keys of its own.
    """
    if fields == (spec.primary_key,):
        return fields
    return (*(k for k in key_prefix(spec) if k not in fields), *fields)


def key_prefix(spec: ModelSpec) -> tuple[str, ...]:
    """The features' key columns (``tenant_id``): every unique key but the primary key starts
    with them."""
    return tuple(k for f in spec.features for k in f.key_fields())


def unique_where(spec: ModelSpec, table: sa.Table) -> sa.ColumnElement[bool] | None:
    """The rows unique keys hold among (``deleted_at IS NULL`` with soft delete), if any.

    It makes unique indexes partial on PostgreSQL and SQLite; MariaDB has no partial indexes.
    """
    clauses = [w for f in spec.features if (w := f.index_where(table)) is not None]
    return sa.and_(*clauses) if clauses else None


def build_table(spec: ModelSpec, metadata: sa.MetaData) -> sa.Table:
    """Create (or replace) the Table for ``spec`` in ``metadata``."""
    if spec.table_name in metadata.tables:
        metadata.remove(metadata.tables[spec.table_name])
    table = sa.Table(spec.table_name, metadata, *(column_for(f) for f in spec.fields.values()))
    partial = unique_where(spec, table)
    for index in spec.indexes:
        names = index.fields
        options: dict[str, Any] = {}
        if index.unique:
            names = unique_fields(spec, names)
            if partial is not None:
                options = {"postgresql_where": partial, "sqlite_where": partial}
        sa.Index(index.name, *(table.c[n] for n in names), unique=index.unique, **options)
    pk = table.c[spec.primary_key]
    scoping = key_prefix(spec)
    for field in spec.fields.values():
        if field.indexed:
            # The primary key after the field lets the index also serve lists in key order.
            # On a scoping field (tenant_id) it is declared unique, which it is anyway, so
            # that relations from other tenant models can reference (tenant_id, id).
            name = short_name(f"ix_{table.name}_{field.name}")
            sa.Index(name, table.c[field.name], pk, unique=field.name in scoping)
    spec.table = table
    return table


def short_name(name: str) -> str:
    """``name``, shortened with a hash to fit every backend's 63-byte names."""
    if len(name) <= 60:
        return name
    return f"{name[:51]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def foreign_key_name(table: str, field: str) -> str:
    return short_name(f"fk_{table}_{field}")


def link_foreign_key(spec: ModelSpec, field: str, target: ModelSpec) -> bool:
    """Give ``spec``'s table a FOREIGN KEY from ``field`` to ``target``'s primary key.

    Between two multi-tenant models the key is ``(tenant_id, field) -> (tenant_id, id)``, so
    the database itself refuses a row that points at another tenant's row. Returns False when
    the table already has the key. The key names its target by table name, so it follows the
    target when that model is defined again.
    """
    table = spec.t
    ref = f"{target.table_name}.{target.primary_key}"
    if any(fk.target_fullname == ref for fk in table.c[field].foreign_keys):
        return False
    shared = [k for k in key_prefix(target) if k in key_prefix(spec)]
    table.append_constraint(
        sa.ForeignKeyConstraint(
            [*shared, field],
            [f"{target.table_name}.{k}" for k in shared] + [ref],
            name=foreign_key_name(table.name, field),
        )
    )
    return True
