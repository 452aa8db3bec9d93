"""Sort specs -> ORDER BY, and keyset paging: resume after a cursor from the previous page.

NULL sorts before every value, ascending (after, descending) on every backend, as SQLite and
MariaDB do by themselves. Ties are broken by the primary key (or, for an aggregate, the group
keys), so an order is total, offset pages never repeat a row, and a cursor names one place.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dataflow.dialects import Dialect
from dataflow.models.types import Refused, json_plain
from dataflow.query.filters import unknown_name
from dataflow.query.namespace import Namespace, Operand
from dataflow.query.operators import ORDERED, bind, refused

Clause = sa.ColumnElement[bool]
_DIRECTIONS = {1: False, -1: True, "asc": False, "desc": True, "ASC": False, "DESC": True}


@dataclass(frozen=True, slots=True)
class Key:
    operand: Operand
    descending: bool


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ended: the sort it was made for and the last row's sort values."""

    signature: tuple[tuple[str, str], ...]
    values: tuple[Any, ...]


class Sort:
    """A checked sort: ``order_by`` clauses, and cursors that resume after a row."""

    def __init__(self, keys: Sequence[Key], dialect: Dialect) -> None:
        self.keys = tuple(keys)
        self.names = tuple(k.operand.name for k in self.keys)
        self.signature = tuple((k.operand.name, "desc" if k.descending else "asc") for k in keys)
        self.order_by = tuple(_order(k, dialect) for k in self.keys)

    def cursor(self, row: Mapping[str, Any]) -> str:
        """The cursor that resumes after ``row``."""
        payload = [list(map(list, self.signature)), [json_plain(row[n]) for n in self.names]]
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    def after(self, cursor: Cursor) -> Clause:
        """Rows that come after the cursor's row in this order; Refused if made for another."""
        if cursor.signature != self.signature:
            made = ", ".join(f"{n} {d}" for n, d in cursor.signature)
            mine = ", ".join(f"{n} {d}" for n, d in self.signature)
            raise Refused(
                f"a cursor made for this sort ({mine}); this one was made for ({made}). "
                "Keep the sort of the page that returned it"
            )
        values = [_value(k.operand, v) for k, v in zip(self.keys, cursor.values, strict=True)]
        ways: list[Clause] = []
        for i, (key, value) in enumerate(zip(self.keys, values, strict=True)):
            beyond = _beyond(key, value)
            if beyond is None:
                continue
            same = [_same(k.operand, v) for k, v in zip(self.keys[:i], values[:i], strict=True)]
            ways.append(sa.and_(*same, beyond))
        return sa.or_(*ways) if ways else sa.false()


def _order(key: Key, dialect: Dialect) -> sa.ColumnElement[Any]:
    expr = key.operand.expr
    order = expr.desc() if key.descending else expr.asc()
    if dialect.nulls_sort_high and key.operand.nullable:
        # Every backend sorts NULL as the smallest value, as SQLite and MySQL do.
        order = order.nulls_last() if key.descending else order.nulls_first()
    return order


def _same(operand: Operand, value: Any) -> Clause:
    expr = operand.expr
    return expr.is_(None) if value is None else expr == bind(expr, value)


def _beyond(key: Key, value: Any) -> Clause | None:
    """Rows past ``value`` on this key alone; None when nothing can be."""
    expr = key.operand.expr
    if not key.descending:
        return expr.is_not(None) if value is None else expr > bind(expr, value)
    if value is None:
        return None  # NULL comes last when descending
    before = expr < bind(expr, value)
    return sa.or_(before, expr.is_(None)) if key.operand.nullable else before


def _value(operand: Operand, value: Any) -> Any:
    if value is None:
        return None
    try:
        return operand.type.coerce(value)
    except Refused:
        raise Refused(
            f"a cursor from this list; its value for '{operand.name}' is not one"
        ) from None


def decode_cursor(value: Any) -> Cursor:
    """Check the shape of a cursor (a ``next_cursor`` of an earlier page)."""
    if not isinstance(value, str):
        raise Refused(
            f"a cursor string (a previous page's next_cursor), got {type(value).__name__}"
        )
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        signature, values = json.loads(raw.decode())
        pairs = tuple((str(n), str(d)) for n, d in signature)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        raise Refused("a cursor returned as next_cursor by the previous page") from None
    if not isinstance(values, list) or len(values) != len(pairs) or not pairs:
        raise Refused("a cursor returned as next_cursor by the previous page")
    return Cursor(pairs, tuple(values))


def compile_sort(
    ns: Namespace, sort: Any, tiebreak: Sequence[Operand] = (), path: str = "sort"
) -> Sort:
    """``[{"f": -1}]``, ``[{"field": "f", "direction": "desc"}]``, ``["-f", "g"]`` or ``"f"``.

    ``tiebreak`` (ascending) follows the given keys, so the order is total.
    """
    if sort is None:
        sort = []
    if isinstance(sort, str | Mapping):
        sort = [sort]
    if not isinstance(sort, list | tuple):
        raise refused(
            path,
            "sort is a list like [{'created_at': -1}] or ['-created_at'], got "
            f"{type(sort).__name__}",
        )
    keys: dict[str, Key] = {}
    for i, item in enumerate(sort):
        at = f"{path}[{i}]"
        for name, descending in _sort_keys(item, at):
            operand = ns.operand(name)
            if operand is None:
                raise unknown_name(ns, name, at)
            if operand.type.name not in ORDERED and operand.type.name != "bool":
                raise refused(at, f"'{name}' is a {operand.type.name} field and has no order")
            keys.setdefault(name, Key(operand, descending))
    for operand in tiebreak:
        keys.setdefault(operand.name, Key(operand, False))
    return Sort(list(keys.values()), ns.dialect)


def _direction(value: Any, at: str) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | str) or value not in _DIRECTIONS:
        raise refused(at, f"direction must be 1, -1, 'asc' or 'desc', got {value!r}")
    return _DIRECTIONS[value]


def _sort_keys(item: Any, at: str) -> list[tuple[str, bool]]:
    if isinstance(item, str):
        return [(item[1:], True)] if item.startswith("-") else [(item.lstrip("+"), False)]
    if isinstance(item, Mapping):
        if "field" in item:
            extra = set(item) - {"field", "direction"}
            if extra:
                raise refused(
                    at,
                    f"unexpected key(s) {', '.join(sorted(map(str, extra)))}; use "
                    "{'field': name, 'direction': 'asc' | 'desc'}",
                )
            name = item["field"]
            if not isinstance(name, str):
                raise refused(at, f"'field' names a field (a str), got {type(name).__name__}")
            return [(name, _direction(item.get("direction", "asc"), at))]
        return [(str(name), _direction(value, f"{at}.{name}")) for name, value in item.items()]
    raise refused(at, f"a sort key is a str or a dict, got {type(item).__name__}")
