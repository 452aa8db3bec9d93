"""Bring the database in line with the models: create tables, add new nullable columns.

Anything beyond additions is refused with the list of differences; migrations own it. The
model's indexes are kept as the model defines them: a missing one is created, and one whose
columns, uniqueness or partial predicate differ (a unique key that gained ``tenant_id``, or
became partial with soft delete) is dropped and created again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from dataflow.dialects import dialect_named
from dataflow.errors import MigrationError
from dataflow.models.spec import ModelSpec

if TYPE_CHECKING:
    from alembic.operations import Operations


def _describe(diff: Any, spec: ModelSpec | None) -> str:
    if isinstance(diff, list):  # column modifications come grouped
        return "; ".join(_describe(d, spec) for d in diff)
    kind = diff[0]
    if kind in ("modify_type", "modify_nullable", "modify_default"):
        _, _, table, column, _, old, new = diff
        what = kind.removeprefix("modify_")
        return f"column {table}.{column}: {what} is {old!r} in the database, {new!r} in the model"
    if kind in ("add_column", "remove_column"):
        column = diff[3]
        verb = "missing from the table" if kind == "add_column" else "not in the model"
        text = f"column {diff[2]}.{column.name} is {verb}"
        options = {x.name: f.option for f in spec.features for x in f.fields()} if spec else {}
        if kind == "add_column" and options.get(column.name):
            text += (
                f" (the '{options[column.name]}' option adds it, and the table's existing rows "
                f"would need a value: add {column.name} to the table and fill it, then start "
                "again)"
            )
        return text
    return " ".join(str(part) for part in diff)


Plan = tuple[
    list[sa.Column[Any]], list[sa.ForeignKeyConstraint], list[sa.ForeignKeyConstraint], list
]


def _plan(conn: Connection, table: sa.Table) -> Plan:
    # Alembic (and Mako behind it) loads when a table already exists, not with every import.
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    context = MigrationContext.configure(
        conn,
        opts={
            "compare_type": True,
            "include_name": lambda name, kind, parent: kind != "table" or name == table.name,
        },
    )
    add_columns: list[sa.Column[Any]] = []
    add_keys: list[sa.ForeignKeyConstraint] = []
    removed_keys: set[Any] = set()
    refused: list = []
    for diff in compare_metadata(context, table.metadata):
        kind = diff[0] if isinstance(diff, tuple) else None
        if kind == "add_column":
            column = diff[3]
            if column.nullable or column.server_default is not None:
                add_columns.append(table.c[column.name])
            else:
                refused.append(diff)
        elif kind == "add_fk":
            add_keys.append(diff[1])
        elif kind == "remove_fk":
            removed_keys.add(diff[1].name)
        elif kind in (
            "add_index",
            "remove_index",
            "add_constraint",
            "remove_constraint",
            "remove_table",
            "add_table",
        ):
            # Indexes are compared by _index_plan (alembic does not see partial predicates);
            # indexes and keys made outside DataFlow are left alone.
            continue
        else:
            refused.append(diff)
    # A key of DataFlow's that the model now wants in another form (a relation between
    # tenant models gains tenant_id) is replaced; keys made outside DataFlow are left alone.
    replaced = [k for k in add_keys if k.name in removed_keys]
    return add_columns, add_keys, replaced, refused


def _index_plan(conn: Connection, table: sa.Table) -> tuple[list[sa.Index], list[sa.Index]]:
    """The model's indexes missing from the database, and those it has in another form."""
    dialect = conn.dialect.name
    found = {i["name"]: i for i in sa.inspect(conn).get_indexes(table.name)}
    missing: list[sa.Index] = []
    changed: list[sa.Index] = []
    for index in sorted(table.indexes, key=lambda i: str(i.name)):
        have = found.get(str(index.name))
        if have is None:
            missing.append(index)
            continue
        partial = index.dialect_kwargs.get(f"{dialect}_where") is not None
        had_partial = (have.get("dialect_options") or {}).get(f"{dialect}_where") is not None
        if (
            list(have["column_names"]) != [c.name for c in index.columns]
            or bool(have["unique"]) != bool(index.unique)
            or had_partial != partial
        ):
            changed.append(index)
    return missing, changed


def sync_table(conn: Connection, spec: ModelSpec) -> list[str]:
    """Create the model's table, or add what the model added; return what was done."""
    done = sync(conn, spec.t, spec.name, spec)
    for feature in spec.features:
        done.extend(feature.sync(conn, spec.t))
    return done


def sync(conn: Connection, table: sa.Table, owner: str, spec: ModelSpec | None = None) -> list[str]:
    """Create ``table`` or add what its definition added; ``owner`` names it in errors."""
    if not sa.inspect(conn).has_table(table.name):
        table.create(conn)
        return [f"created table {table.name}"]
    add_columns, add_keys, replaced, refused = _plan(conn, table)
    if refused:
        raise MigrationError(
            f"{owner}: table '{table.name}' exists and differs from the model: "
            + "; ".join(_describe(d, spec) for d in refused)
            + ". Only new nullable or defaulted columns are added automatically; change the "
            "model back or migrate the table."
        )
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    done = []
    ops = Operations(MigrationContext.configure(conn))
    for column in add_columns:
        ops.add_column(table.name, column._copy())
        done.append(f"added column {table.name}.{column.name}")
    for key in add_keys:
        _add_foreign_key(conn, ops, owner, table, key, replace=key in replaced)
        done.append(f"{'replaced' if key in replaced else 'added'} foreign key {key.name}")
    # After the keys: SQLite adds one by copying the table, indexes and all.
    missing, changed = _index_plan(conn, table)
    for index in changed:
        ops.drop_index(str(index.name), table_name=table.name)
    for index in [*changed, *missing]:
        index.create(conn)
        verb = "recreated" if index in changed else "created"
        done.append(f"{verb} index {index.name}")
    return done


def _add_foreign_key(
    conn: Connection,
    ops: Operations,
    owner: str,
    table: sa.Table,
    key: sa.ForeignKeyConstraint,
    replace: bool = False,
) -> None:
    """Add a relation's FOREIGN KEY to an existing table (``replace``: the key of that name
    first goes); its rows must all point somewhere."""
    name_of_table = table.name
    local = [c.name for c in key.columns]
    target = key.elements[0].column.table.name
    remote = [e.column.name for e in key.elements]
    name = str(key.name)
    refused = MigrationError(
        f"{owner}: cannot add the foreign key {name_of_table}.{', '.join(local)} -> "
        f"{target}.{', '.join(remote)}: some rows point at no {target} row. Fix those rows, "
        "or switch the relation off in __relations__."
    )
    if not dialect_named(conn.dialect.name).alters_by_copy:
        try:
            if replace:
                ops.drop_constraint(name, name_of_table, type_="foreignkey")
                indexes = {i["name"] for i in sa.inspect(conn).get_indexes(name_of_table)}
                if name in indexes:  # MariaDB keeps the index it made for the key
                    ops.drop_index(name, table_name=name_of_table)
            ops.create_foreign_key(name, name_of_table, target, local, remote)
        except sa_exc.IntegrityError:
            raise refused from None  # the driver's DETAIL names the rows' values
        return
    # SQLite cannot add a constraint to a table; batch mode copies it into a new one, in one
    # transaction (pysqlite starts none by itself here). Checks wait for the commit, by which
    # time the copy has the table's name again.
    if not conn.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
    with ops.batch_alter_table(name_of_table) as batch:
        if replace:
            batch.drop_constraint(name, type_="foreignkey")
        batch.create_foreign_key(name, target, local, remote)
    if conn.exec_driver_sql(f'PRAGMA foreign_key_check("{name_of_table}")').first() is not None:
        raise refused
