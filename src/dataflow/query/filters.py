"""Filter dicts -> a checked ``Filter`` that yields SQLAlchemy WHERE clauses for a Scope.

The filter is checked once, when a node's parameters are checked; its clauses are made when
a statement runs, because a relation's subquery carries the related model's own clauses
(tenant, soft delete), which depend on who runs it.

``$not`` and ``$nor`` are plain negation: a row matches ``{"$not": X}`` exactly when it does
not match ``X``. Negations are pushed down to the operators (De Morgan), each of which knows
its exact complement, NULL rows included.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dataflow.dialects import Dialect
from dataflow.errors import InvalidFilterError
from dataflow.features.tenancy import filter_tenant
from dataflow.models.types import MAX_DEPTH, check_nesting
from dataflow.query import operators
from dataflow.query.namespace import Hop, Namespace, Operand
from dataflow.query.operators import refused, suggest

if TYPE_CHECKING:
    from dataflow.features.base import Scope

Clause = sa.ColumnElement[bool]
_LOGICAL = ("$and", "$or", "$nor", "$not")


@dataclass(frozen=True, slots=True)
class _Fixed:
    """A condition whose clause is the same for every scope."""

    clause: Clause

    def sql(self, scope: Scope) -> Clause:
        return self.clause


@dataclass(frozen=True, slots=True)
class _Join:
    """Conditions that must all hold (or one of which must), some following a relation."""

    conjunction: bool
    parts: tuple[_Part, ...]

    def sql(self, scope: Scope) -> Clause:
        join = sa.and_ if self.conjunction else sa.or_
        return join(*(part.sql(scope) for part in self.parts))


@dataclass(frozen=True, slots=True)
class _Through:
    """A relation: some related row, visible in the scope, matches ``inner`` (or none does)."""

    hop: Hop
    inner: Filter
    negate: bool

    def sql(self, scope: Scope) -> Clause:
        target = self.hop.target
        found = sa.exists().where(self.hop.join, *self.inner.clauses(scope), *target.scoped(scope))
        return ~found if self.negate else found


@dataclass(frozen=True, slots=True)
class _Tenant:
    """``tenant_id`` of a multi-tenant model: it may only name the operation's own tenant."""

    column: sa.ColumnElement[Any]
    named: str
    at: str
    negate: bool

    def sql(self, scope: Scope) -> Clause:
        if filter_tenant(scope, self.named, self.at) is None:  # every tenant: an ordinary test
            return self.column != self.named if self.negate else self.column == self.named
        return sa.false() if self.negate else sa.true()


#: One compiled condition; ``sql(scope)`` is its clause.
_Part = _Fixed | _Join | _Through | _Tenant


def _combine(parts: list[_Part], conjunction: bool) -> _Part:
    clauses = [p.clause for p in parts if isinstance(p, _Fixed)]
    if len(clauses) == len(parts):
        join = sa.and_ if conjunction else sa.or_
        if not clauses:
            return _Fixed(sa.true() if conjunction else sa.false())
        return _Fixed(join(*clauses) if len(clauses) > 1 else clauses[0])
    return parts[0] if len(parts) == 1 else _Join(conjunction, tuple(parts))


class Filter:
    """A checked filter; ``clauses(scope)`` are its WHERE clauses for one operation."""

    __slots__ = ("_part",)

    def __init__(self, part: _Part | None) -> None:
        if isinstance(part, _Fixed) and isinstance(part.clause, sa.sql.elements.True_):
            part = None
        self._part = part

    def __bool__(self) -> bool:
        """Whether the filter leaves any row out (an empty filter matches every row)."""
        return self._part is not None

    @property
    def fixed(self) -> bool:
        """Whether its clauses are the same for every scope (it follows no relation)."""
        return self._part is None or isinstance(self._part, _Fixed)

    def clauses(self, scope: Scope) -> list[Clause]:
        part = self._part
        return [] if part is None else [part.sql(scope)]


MATCH_ALL = Filter(None)


def compile_filter(namespace: Namespace, where: Any, path: str = "filter") -> Filter:
    """Check a filter dict against the names of ``namespace``; None matches every row."""
    if where is None:
        return MATCH_ALL
    if isinstance(where, Filter):
        return where
    if check_nesting(where) is not None:
        raise refused(
            path,
            f"a filter nests at most {MAX_DEPTH} levels deep (each dict and list is one); "
            "flatten it, e.g. one $and over many conditions instead of $and inside $and",
        )
    return Filter(_conditions(namespace, where, path, negate=False))


def _conditions(ns: Namespace, where: Any, path: str, negate: bool) -> _Part:
    if not isinstance(where, Mapping):
        raise refused(path, f"a filter is a dict of field -> condition, got {type(where).__name__}")
    parts = [_entry(ns, key, value, f"{path}.{key}", negate) for key, value in where.items()]
    return _combine(parts, conjunction=not negate)


def _entry(ns: Namespace, key: Any, value: Any, at: str, negate: bool) -> _Part:
    if not isinstance(key, str):
        raise refused(at, f"filter keys are field names (str), got {type(key).__name__}")
    if key.startswith("$"):
        return _logical(ns, key, value, at, negate)
    operand = ns.operand(key)
    if operand is not None and key == ns.tenant_key:
        return _tenant(operand, value, at, negate)
    if operand is not None:
        return _Fixed(_field(ns.dialect, operand, value, at, negate))
    hop = ns.hop(key)
    if hop is not None:
        if not isinstance(value, Mapping):
            raise refused(
                at,
                f"'{key}' is a relation to {hop.relation.model}; its value is a filter on "
                f"{hop.relation.model}, like {{'{key}': {{'name': ...}}}}",
            )
        return _Through(hop, compile_filter(hop.target, value, at), negate)
    raise unknown_name(ns, key, at)


def _tenant(operand: Operand, value: Any, at: str, negate: bool) -> _Tenant:
    named = value.get("$eq") if isinstance(value, Mapping) and set(value) == {"$eq"} else value
    if not isinstance(named, str):
        raise refused(
            at,
            "tenant_id is the operation's tenant; a filter may name that tenant "
            "({'tenant_id': 't1'}) or leave it out, with no other operator",
            operand.name,
        )
    return _Tenant(operand.expr, named, at, negate)


def unknown_name(ns: Namespace, name: str, at: str) -> InvalidFilterError:
    """An unknown field or relation, with the likely fix and the names there are."""
    reason = ns.why_not(name)
    if reason:
        return refused(at, reason, name)
    names = ns.names()
    hint = difflib.get_close_matches(name, names, n=1)
    extra = f" Did you mean '{hint[0]}'?" if hint else ""
    return refused(
        at, f"unknown field '{name}'.{extra} {ns.owner} has fields: {', '.join(names)}", name
    )


def _logical(ns: Namespace, op: str, value: Any, at: str, negate: bool) -> _Part:
    if op == "$not":
        return _conditions(ns, value, at, not negate)
    if op not in _LOGICAL:
        if op in operators.OPERATORS:
            raise refused(at, f"{op} tests a field: write {{'field': {{'{op}': ...}}}}")
        raise refused(
            at, f"unknown operator{suggest(op, list(_LOGICAL))} Here: $and, $or, $nor, $not"
        )
    if not isinstance(value, list | tuple):
        raise refused(at, f"{op} takes a list of filters, got {type(value).__name__}")
    # $and: all hold; $or: one holds; $nor: none holds. Negated, each turns into its dual.
    inner_negate = negate != (op == "$nor")
    conjunction = (op != "$or") != negate
    parts = [_conditions(ns, item, f"{at}[{i}]", inner_negate) for i, item in enumerate(value)]
    return _combine(parts, conjunction)


def _field(dialect: Dialect, operand: Operand, value: Any, at: str, negate: bool) -> Clause:
    """``{field: value}``: None is IS NULL, a dict holds operators (all must hold)."""
    if not isinstance(value, Mapping):
        return operators.apply(dialect, operand, "$eq", value, at, negate)
    if not value:
        raise refused(at, "an empty operator object; write e.g. {'$gt': 5}")
    parts = []
    for name, arg in value.items():
        where = f"{at}.{name}"
        if not isinstance(name, str) or not name.startswith("$"):
            hint = " (filters do not look inside JSON fields)" if operand.type.is_json else ""
            raise refused(
                where,
                f"'{operand.name}' compares with a value or an operator object like "
                f"{{'$gt': 5}}, not a dict of keys{hint}",
                operand.name,
            )
        if name == "$not":
            parts.append(_field(dialect, operand, arg, where, not negate))
        else:
            parts.append(operators.apply(dialect, operand, name, arg, where, negate))
    if len(parts) == 1:
        return parts[0]
    return sa.or_(*parts) if negate else sa.and_(*parts)
