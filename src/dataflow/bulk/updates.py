"""Set-based updates and deletes: one statement for every row a filter matches.

An update is plain values (``{"price": 9.5}``) or operators, per field
(``{"price": {"$multiply": 0.9}}``) or MongoDB-style (``{"$inc": {"stock": 1}}``):
``$set``, ``$inc``, ``$multiply``, ``$unset`` (sets NULL). Arithmetic follows SQL: a NULL
stays NULL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dataflow.dialects import Dialect
from dataflow.features.base import Image, Scope
from dataflow.models.spec import ModelSpec
from dataflow.models.types import Refused

if TYPE_CHECKING:
    from dataflow.statements.model import ModelStatements

Checker = Callable[[Any], Any]
Change = tuple[str, Any]  # (operator, checked operand)
Clauses = Sequence[sa.ColumnElement[bool]]

OPERATORS = ("$set", "$inc", "$multiply", "$unset")
#: Rows changed per statement when each change is recorded.
_CHUNK = 1000
_NUMERIC = frozenset({"int", "float", "Decimal"})


def update_checker(spec: ModelSpec, checkers: Mapping[str, Checker]) -> Checker:
    """Check an ``update`` parameter into ``{field: (operator, operand)}``."""

    def add(out: dict[str, Change], name: Any, op: str, operand: Any) -> None:
        if name not in checkers:
            fields = ", ".join(checkers)
            raise Refused(f"fields of {spec.name} to change ({fields}); '{name}' is not one")
        if name in out:
            raise Refused(f"one change per field; '{name}' is changed twice")
        field = spec.fields[name]
        if op == "$unset":
            if not field.nullable:
                raise Refused(
                    f"'$unset' on an Optional field; '{name}' is not Optional, so it cannot "
                    "be set to NULL"
                )
            out[name] = (op, None)
            return
        if op in ("$inc", "$multiply") and field.type.name not in _NUMERIC:
            raise Refused(f"'{op}' on a number field; '{name}' is a {field.type.name}")
        if op != "$set" and operand is None:
            raise Refused(f"a number for '{op}' on '{name}', got None")
        try:
            out[name] = (op, checkers[name](operand))
        except Refused as exc:
            raise Refused(f"'{op}' on '{name}' to be given {exc}") from None

    def check(update: Any) -> dict[str, Change]:
        if not isinstance(update, Mapping) or not update:
            raise Refused(
                "a non-empty dict of field -> new value, e.g. {'price': 9.5} or "
                "{'price': {'$multiply': 0.9}}"
            )
        out: dict[str, Change] = {}
        for key, value in update.items():
            if isinstance(key, str) and key.startswith("$"):
                if key not in OPERATORS:
                    raise Refused(f"update operators from {', '.join(OPERATORS)}; not '{key}'")
                if key == "$unset" and isinstance(value, list | tuple):
                    value = dict.fromkeys(value)
                if not isinstance(value, Mapping):
                    raise Refused(f"'{key}' to hold a dict of field -> operand")
                for name, operand in value.items():
                    add(out, name, key, operand)
            elif isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in OPERATORS:
                ((op, operand),) = value.items()
                add(out, key, op, operand)
            else:
                add(out, key, "$set", value)
        return out

    return check


def column_values(
    table: sa.Table, changes: Mapping[str, Change], dialect: Dialect
) -> dict[str, Any]:
    """The SET clause of checked changes: values, or expressions on the current value."""
    values: dict[str, Any] = {}
    for name, (op, operand) in changes.items():
        column = table.c[name]
        if op == "$inc":
            values[name] = dialect.checked_arithmetic(column + operand, column)
        elif op == "$multiply":
            values[name] = dialect.checked_arithmetic(column * operand, column)
        else:
            values[name] = operand
    return values


def update_where(
    conn: Connection,
    statements: ModelStatements,
    scope: Scope,
    where: Clauses,
    changes: Mapping[str, Change],
    batch: int | None = None,
    max_rows: int | None = None,
) -> int:
    """Apply ``changes`` to the rows matching ``where``; return how many matched.

    With ``batch``, each statement changes the next ``batch`` matching rows by primary key,
    until none is left; ``max_rows`` stops after that many, lowest ids first. The statements
    share the caller's transaction.
    """
    values = statements.stamp_update(
        column_values(statements.table, changes, statements.dialect), scope
    )
    clauses = [*where, *statements.where(scope)]
    if batch is None and max_rows is None:
        return _update(conn, statements, scope, clauses, values)
    pk = statements.pk
    done = 0
    after: Any = None
    while max_rows is None or done < max_rows:
        size = max_rows - done if batch is None else batch  # type: ignore[operator]
        if max_rows is not None:
            size = min(size, max_rows - done)
        # A window of primary keys: the rows past the last batch, up to the size-th match. A
        # statement never meets a row twice, even when its change keeps the row matching.
        window = [*clauses, pk > after] if after is not None else clauses
        first = sa.select(pk).where(*window).order_by(pk).limit(size).subquery()
        upper = conn.execute(sa.select(sa.func.max(first.c[pk.name]))).scalar()
        if upper is None:
            break
        done += _update(conn, statements, scope, [*window, pk <= upper], values)
        after = upper
    return done


def _update(
    conn: Connection,
    statements: ModelStatements,
    scope: Scope,
    clauses: Clauses,
    values: dict[str, Any],
) -> int:
    if statements.historians:
        return _by_images(conn, statements, scope, clauses, "update", values)
    stmt = sa.update(statements.table).where(*clauses)
    return conn.execute(stmt.values(values)).rowcount


def delete_where(
    conn: Connection, statements: ModelStatements, scope: Scope, where: Clauses, soft: bool = False
) -> int:
    """Delete the rows matching ``where`` (``soft``: mark them deleted); return how many."""
    clauses = [*where, *statements.where(scope)]
    values = statements.soft_delete_values(scope) if soft else None
    if statements.historians:
        action = "soft_delete" if soft else "delete"
        return _by_images(conn, statements, scope, clauses, action, values)
    if values is not None:
        return conn.execute(sa.update(statements.table).where(*clauses).values(values)).rowcount
    return conn.execute(sa.delete(statements.table).where(*clauses)).rowcount


def _by_images(
    conn: Connection,
    statements: ModelStatements,
    scope: Scope,
    clauses: Clauses,
    action: str,
    values: dict[str, Any] | None,
) -> int:
    """Lock and read the matching rows, change them by primary key, and record each change.

    Changing the rows read (rather than whatever matches when the write runs) keeps every
    image true: a row that comes to match in between is neither changed nor recorded. An
    update's images hold only the columns it sets; a delete's, the whole row.
    """
    table, pk = statements.table, statements.pk
    names = None if values is None else [*values, pk.name, "tenant_id"]
    columns = [c for c in table.c if names is None or c.name in names]
    locked = sa.select(*columns).where(*clauses).order_by(pk).with_for_update()
    olds = _dicts(conn.execute(locked))
    for start in range(0, len(olds), _CHUNK):
        part = olds[start : start + _CHUNK]
        keys = pk.in_([old[pk.name] for old in part])
        news: dict[Any, dict[str, Any]] = {}
        if values is None:
            conn.execute(sa.delete(table).where(keys))
        else:
            stmt = sa.update(table).where(keys).values(values)
            if conn.dialect.update_returning:
                written = conn.execute(stmt.returning(*columns))
            else:
                conn.execute(stmt)
                written = conn.execute(sa.select(*columns).where(keys))
            news = {new[pk.name]: new for new in _dicts(written)}
        images = [Image(old[pk.name], old, news.get(old[pk.name])) for old in part]
        statements.record(conn, scope, action, images)
    return len(olds)


def _dicts(result: sa.CursorResult[Any]) -> list[dict[str, Any]]:
    # map() keeps the per-row work in C.
    return list(map(dict, map(zip, repeat(tuple(result.keys())), result.all())))
