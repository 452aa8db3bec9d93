"""The field operators of the filter language; each gives a clause and its exact negation.

A NULL field matches none of the comparisons, so SQL's NOT would leave it out of the
negation too (NOT NULL is NULL). Every operator therefore says what "does not match" is,
NULL rows included, and the compiler picks the side a ``$not``/``$nor`` asks for.
"""

from __future__ import annotations

import datetime as dt
import decimal
import difflib
import math
import operator
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import operators as sql_operators

from dataflow.dialects import Dialect
from dataflow.errors import InvalidFilterError
from dataflow.models.types import Refused, encodable
from dataflow.query import strings
from dataflow.query.namespace import Operand
from dataflow.query.regex import RegexError, parse_regex

Clause = sa.ColumnElement[bool]
Pair = tuple[Clause, Clause]  # (matches, does not match)
Operator = Callable[[Dialect, Operand, Any, str], Pair]

#: Field types with an order, for $gt, $between, sorting, $min and $max.
ORDERED = frozenset({"int", "float", "Decimal", "str", "date", "datetime"})
_INT64 = range(-(2**63), 2**63)


def a_kind(kind: str) -> str:
    """``an int``, ``a str``: a field type's name with its article."""
    return f"{'an' if kind[0] in 'aeiouAEIOU' else 'a'} {kind}"


def refused(at: str, message: str, field: str | None = None) -> InvalidFilterError:
    return InvalidFilterError(f"{at}: {message}", path=at, field=field)


def coerce(operand: Operand, value: Any, at: str) -> Any:
    """``value`` as the operand's type: an ISO string or a date for a datetime, and so on."""
    if value is None:
        raise refused(at, "compares with a value, not None; match NULL with None or $null")
    kind = operand.type.name
    if kind == "datetime" and type(value) is dt.date:
        value = dt.datetime.combine(value, dt.time(), dt.UTC)
    try:
        out = operand.type.coerce(value)
    except Refused as exc:
        raise refused(at, f"expects {exc}", operand.name) from None
    if isinstance(out, float) and not math.isfinite(out):
        raise refused(at, f"expects a finite number, got {out!r}", operand.name)
    if isinstance(out, decimal.Decimal) and not out.is_finite():
        raise refused(at, f"expects a finite Decimal, got {out!r}", operand.name)
    if kind == "int" and out not in _INT64:
        raise refused(at, "expects an int that fits in 64 bits", operand.name)
    return out


def bind(expr: sa.ColumnElement[Any], value: Any) -> sa.BindParameter[Any]:
    """``value`` as a parameter typed as SQLAlchemy types one compared with ``expr``.

    Explicit, since SQLAlchemy takes a bare True or False for a SQL constant.
    """
    return sa.bindparam(None, value, type_=expr.type.coerce_compared_value(sql_operators.eq, value))


def _items(value: Any, at: str, length: int | None = None) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise refused(at, f"expects a list, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise refused(at, f"expects a list of {length} values, got {len(value)}")
    return list(value)


def _text(value: Any, at: str) -> str:
    if not isinstance(value, str):
        raise refused(at, f"expects a str, got {type(value).__name__}")
    if not encodable(value):
        raise refused(
            at, "expects a str without lone surrogates (\\ud800-\\udfff); this one holds one"
        )
    return value


def _pair(operand: Operand, match: Clause) -> Pair:
    if operand.nullable:
        return match, sa.or_(operand.expr.is_(None), sa.not_(match))
    return match, sa.not_(match)


def _is_null(operand: Operand) -> Pair:
    return operand.expr.is_(None), operand.expr.is_not(None)


def _swap(pair: Pair) -> Pair:
    return pair[1], pair[0]


def _eq(dialect: Dialect, operand: Operand, value: Any, at: str) -> Pair:
    if value is None:
        return _is_null(operand)
    return _pair(operand, operand.expr == coerce(operand, value, at))


def _in(dialect: Dialect, operand: Operand, value: Any, at: str) -> Pair:
    items = _items(value, at)
    values = [coerce(operand, v, f"{at}[{i}]") for i, v in enumerate(items) if v is not None]
    with_null = len(values) < len(items)
    if not values:
        return _is_null(operand) if with_null else (sa.false(), sa.true())
    # One parameter per value, not an "expanding" one: a checked filter is reused, and an
    # expanding list is rewritten on every execution.
    found = operand.expr.in_([bind(operand.expr, v) for v in values])
    if not with_null:
        return _pair(operand, found)
    return sa.or_(found, operand.expr.is_(None)), sa.and_(operand.expr.is_not(None), ~found)


def _ordered(compare: Callable[[Any, Any], Clause]) -> Operator:
    def apply(dialect: Dialect, operand: Operand, value: Any, at: str) -> Pair:
        return _pair(operand, compare(operand.expr, coerce(operand, value, at)))

    return apply


def _between(dialect: Dialect, operand: Operand, value: Any, at: str) -> Pair:
    low, high = (coerce(operand, v, f"{at}[{i}]") for i, v in enumerate(_items(value, at, 2)))
    return _pair(operand, operand.expr.between(low, high))


def _like(fold: bool) -> Operator:
    def apply(dialect: Dialect, operand: Operand, value: Any, at: str) -> Pair:
        try:
            parts = strings.parse_like(_text(value, at))
        except strings.PatternError as exc:
            raise refused(at, f"the pattern {exc}") from None
        match = (strings.ilike if fold else strings.like)(dialect, operand.expr, parts)
        return _pair(operand, match)

    return apply


def _substring(start: bool, end: bool) -> Operator:
    def apply(dialect: Dialect, operand: Operand, value: Any, at: str) -> Pair:
        parts = strings.contains(_text(value, at), start, end)
        return _pair(operand, strings.like(dialect, operand.expr, parts))

    return apply


def _regex(dialect: Dialect, operand: Operand, value: Any, at: str) -> Pair:
    try:
        pattern = parse_regex(_text(value, at))
    except RegexError as exc:
        raise refused(at, str(exc)) from None
    return _pair(operand, strings.regex(dialect, operand.expr, pattern))


def _presence(present: bool) -> Operator:
    def apply(dialect: Dialect, operand: Operand, value: Any, at: str) -> Pair:
        if not isinstance(value, bool):
            raise refused(at, f"expects True or False, got {type(value).__name__}")
        pair = _is_null(operand)
        return _swap(pair) if value == present else pair

    return apply


OPERATORS: dict[str, Operator] = {
    "$eq": _eq,
    "$ne": lambda d, o, v, at: _swap(_eq(d, o, v, at)),
    "$gt": _ordered(operator.gt),
    "$gte": _ordered(operator.ge),
    "$lt": _ordered(operator.lt),
    "$lte": _ordered(operator.le),
    "$between": _between,
    "$in": _in,
    "$nin": lambda d, o, v, at: _swap(_in(d, o, v, at)),
    "$like": _like(fold=False),
    "$ilike": _like(fold=True),
    "$regex": _regex,
    "$contains": _substring(start=False, end=False),
    "$startswith": _substring(start=True, end=False),
    "$endswith": _substring(start=False, end=True),
    "$exists": _presence(True),
    "$null": _presence(False),
}
_NEEDS_ORDER = frozenset({"$gt", "$gte", "$lt", "$lte", "$between"})
_NEEDS_TEXT = frozenset({"$like", "$ilike", "$regex", "$contains", "$startswith", "$endswith"})
_ANY_TYPE = frozenset({"$exists", "$null"})


def suggest(name: str, known: list[str]) -> str:
    """``; did you mean X?`` for the closest of ``known``, else a full stop."""
    hint = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {hint[0]}?" if hint else "."


def apply(
    dialect: Dialect, operand: Operand, name: str, value: Any, at: str, negate: bool
) -> Clause:
    """The clause for ``{field: {name: value}}``, or its negation."""
    op = OPERATORS.get(name)
    if op is None:
        known = [*OPERATORS, "$not"]
        raise refused(at, f"unknown operator{suggest(name, known)} Operators: {', '.join(known)}")
    kind = operand.type.name
    if operand.type.is_json and name not in _ANY_TYPE and value is not None:
        raise refused(
            at,
            f"'{operand.name}' is {a_kind(kind)} field; filters test it only for None ($null, "
            "$exists), not its contents",
            operand.name,
        )
    if (name in _NEEDS_ORDER and kind not in ORDERED) or (name in _NEEDS_TEXT and kind != "str"):
        needs = "str fields" if name in _NEEDS_TEXT else "ordered fields (numbers, str, dates)"
        raise refused(
            at, f"{name} applies to {needs}; '{operand.name}' is {a_kind(kind)}", operand.name
        )
    match, miss = op(dialect, operand, value, at)
    return miss if negate else match
