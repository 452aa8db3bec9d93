"""Bring the database in line with the models: create tables, add new nullable columns.

Anything beyond additions is refused with the list of differences; migrations own it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from dataflow.errors import MigrationError
from dataflow.models.spec import ModelSpec


def _describe(diff: Any) -> str:
    if isinstance(diff, list):  # column modifications come grouped
        return "; ".join(_describe(d) for d in diff)
    kind = diff[0]
    if kind in ("modify_type", "modify_nullable", "modify_default"):
        _, _, table, column, _, old, new = diff
        what = kind.removeprefix("modify_")
        return f"column {table}.{column}: {what} is {old!r} in the database, {new!r} in the model"
    if kind in ("add_column", "remove_column"):
        column = diff[3]
        verb = "missing from the table" if kind == "add_column" else "not in the model"
        return f"column {diff[2]}.{column.name} is {verb}"
    return " ".join(str(part) for part in diff)


Plan = tuple[list[sa.Column[Any]], list[sa.Index], list[sa.ForeignKeyConstraint], list]


def _plan(conn: Connection, table: sa.Table) -> Plan:
    context = MigrationContext.configure(
        conn,
        opts={
            "compare_type": True,
            "include_name": lambda name, kind, parent: kind != "table" or name == table.name,
        },
    )
    add_columns: list[sa.Column[Any]] = []
    add_indexes: list[sa.Index] = []
    add_keys: list[sa.ForeignKeyConstraint] = []
    refused: list = []
    for diff in compare_metadata(context, table.metadata):
        kind = diff[0] if isinstance(diff, tuple) else None
        if kind == "add_column":
            column = diff[3]
            if column.nullable or column.server_default is not None:
                add_columns.append(table.c[column.name])
            else:
                refused.append(diff)
        elif kind == "add_index":
            add_indexes.append(next(i for i in table.indexes if i.name == diff[1].name))
        elif kind == "add_fk":
            add_keys.append(diff[1])
        elif kind in ("remove_index", "remove_fk", "remove_table", "add_table"):
            continue  # indexes and keys made outside DataFlow are left alone
        else:
            refused.append(diff)
    return add_columns, add_indexes, add_keys, refused


def sync_table(conn: Connection, spec: ModelSpec) -> list[str]:
    """Create the model's table, or add what the model added; return what was done."""
    table = spec.t
    if not sa.inspect(conn).has_table(table.name):
        table.create(conn)
        return [f"created table {table.name}"]
    add_columns, add_indexes, add_keys, refused = _plan(conn, table)
    if refused:
        raise MigrationError(
            f"{spec.name}: table '{table.name}' exists and differs from the model: "
            + "; ".join(_describe(d) for d in refused)
            + ". Only new nullable or defaulted columns are added automatically; change the "
            "model back or migrate the table."
        )
    done = []
    ops = Operations(MigrationContext.configure(conn))
    for column in add_columns:
        ops.add_column(table.name, column._copy())
        done.append(f"added column {table.name}.{column.name}")
    for index in add_indexes:
        ops.create_index(
            index.name, table.name, [c.name for c in index.columns], unique=index.unique
        )
        done.append(f"created index {index.name}")
    for key in add_keys:
        _add_foreign_key(conn, ops, spec, key)
        done.append(f"added foreign key {key.name}")
    return done


def _add_foreign_key(
    conn: Connection, ops: Operations, spec: ModelSpec, key: sa.ForeignKeyConstraint
) -> None:
    """Add a relation's FOREIGN KEY to an existing table; its rows must all point somewhere."""
    table = spec.t.name
    local = [c.name for c in key.columns]
    target = key.elements[0].column.table.name
    remote = [e.column.name for e in key.elements]
    name = str(key.name)
    refused = MigrationError(
        f"{spec.name}: cannot add the foreign key {table}.{', '.join(local)} -> "
        f"{target}.{', '.join(remote)}: some rows point at no {target} row. Fix those rows, "
        "or switch the relation off in __relations__."
    )
    if conn.dialect.name != "sqlite":
        try:
            ops.create_foreign_key(name, table, target, local, remote)
        except sa_exc.IntegrityError as exc:
            raise refused from exc
        return
    # SQLite cannot add a constraint to a table; batch mode copies it into a new one, in one
    # transaction (pysqlite starts none by itself here). Checks wait for the commit, by which
    # time the copy has the table's name again.
    if not conn.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
    with ops.batch_alter_table(table) as batch:
        batch.create_foreign_key(name, target, local, remote)
    if conn.exec_driver_sql(f'PRAGMA foreign_key_check("{table}")').first() is not None:
        raise refused
