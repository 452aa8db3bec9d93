"""Filter dicts -> SQLAlchemy WHERE clauses; sort specs -> ORDER BY."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from dataflow.errors import InvalidFilterError
from dataflow.models.spec import ModelSpec
from dataflow.models.types import Refused


def _unknown_field(spec: ModelSpec, name: str, path: str) -> InvalidFilterError:
    hint = difflib.get_close_matches(name, spec.fields, n=1)
    extra = f" Did you mean '{hint[0]}'?" if hint else ""
    return InvalidFilterError(
        f"{path}: unknown field '{name}'.{extra} {spec.name} has fields: {', '.join(spec.fields)}",
        path=path,
        field=name,
    )


def coerce_value(spec: ModelSpec, name: str, value: Any, path: str) -> Any:
    try:
        return spec.fields[name].type.coerce(value)
    except Refused as exc:
        raise InvalidFilterError(f"{path}: expects {exc}", path=path, field=name) from None


def compile_filter(
    spec: ModelSpec, where: Any, path: str = "filter"
) -> list[sa.ColumnElement[bool]]:
    """Equality filters: ``{"field": value}`` and ``{"field": None}`` (IS NULL)."""
    if where is None:
        return []
    if not isinstance(where, Mapping):
        raise InvalidFilterError(
            f"{path}: a filter is a dict of field -> value, got {type(where).__name__}", path=path
        )
    table = spec.t
    clauses: list[sa.ColumnElement[bool]] = []
    for name, value in where.items():
        at = f"{path}.{name}"
        if not isinstance(name, str):
            raise InvalidFilterError(f"{at}: field names are strings", path=at)
        if name.startswith("$"):
            raise InvalidFilterError(f"{at}: unknown operator '{name}'", path=at)
        if name not in spec.fields:
            raise _unknown_field(spec, name, at)
        column = table.c[name]
        if value is None:
            clauses.append(column.is_(None))
            continue
        if isinstance(value, Mapping):
            ops = ", ".join(map(str, value)) or "{}"
            raise InvalidFilterError(
                f"{at}: unknown operator(s) {ops}; compare with a plain value", path=at
            )
        clauses.append(column == coerce_value(spec, name, value, at))
    return clauses


def compile_sort(spec: ModelSpec, sort: Any, path: str = "sort") -> list[sa.ColumnElement[Any]]:
    """``[{"f": -1}]``, ``[{"field": "f", "direction": "desc"}]``, ``["-f", "g"]`` or ``"f"``."""
    if sort is None:
        return []
    if isinstance(sort, str | Mapping):
        sort = [sort]
    if not isinstance(sort, list | tuple):
        raise InvalidFilterError(
            f"{path}: sort is a list like [{{'created_at': -1}}] or ['-created_at'], got "
            f"{type(sort).__name__}",
            path=path,
        )
    order: list[sa.ColumnElement[Any]] = []
    for i, item in enumerate(sort):
        at = f"{path}[{i}]"
        for name, descending in _sort_keys(item, at):
            if name not in spec.fields:
                raise _unknown_field(spec, name, at)
            column = spec.t.c[name]
            order.append(column.desc() if descending else column.asc())
    return order


_DIRECTIONS = {1: False, -1: True, "asc": False, "desc": True, "ASC": False, "DESC": True}


def _direction(value: Any, at: str) -> bool:
    if isinstance(value, bool) or value not in _DIRECTIONS:
        raise InvalidFilterError(
            f"{at}: direction must be 1, -1, 'asc' or 'desc', got {value!r}", path=at
        )
    return _DIRECTIONS[value]


def _sort_keys(item: Any, at: str) -> list[tuple[str, bool]]:
    if isinstance(item, str):
        return [(item[1:], True)] if item.startswith("-") else [(item.lstrip("+"), False)]
    if isinstance(item, Mapping):
        if "field" in item:
            extra = set(item) - {"field", "direction"}
            if extra:
                raise InvalidFilterError(
                    f"{at}: unexpected key(s) {', '.join(sorted(extra))}; use "
                    "{'field': name, 'direction': 'asc' | 'desc'}",
                    path=at,
                )
            return [(item["field"], _direction(item.get("direction", "asc"), at))]
        return [(str(name), _direction(value, f"{at}.{name}")) for name, value in item.items()]
    raise InvalidFilterError(
        f"{at}: a sort key is a str or a dict, got {type(item).__name__}", path=at
    )
