"""Aggregates: ``group_by``, ``$count $count_distinct $sum $avg $min $max``, ``having``, sort.

Values come back alike on every backend: a count is an int, a sum has its field's type, an
average is a float (the exact sum divided by the count, in double precision; MariaDB's own
AVG rounds to four decimals). Aliases never reach SQL: columns are labelled ``m0, m1, ...``
and renamed in Python, so an alias may be any string.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dataflow.dialects import Dialect
from dataflow.dialects.functions import as_double
from dataflow.models.spec import ModelSpec
from dataflow.models.types import FIELD_TYPES
from dataflow.query.filters import compile_filter
from dataflow.query.namespace import Namespace, Operand, model_operands
from dataflow.query.operators import ORDERED, a_kind, refused, suggest
from dataflow.query.sort import compile_sort

if TYPE_CHECKING:
    from dataflow.features.base import Scope

_NUMBERS = frozenset({"int", "float", "Decimal"})
#: Operator -> the field types it takes (None: any column, and "*" for every row).
_TAKES: dict[str, frozenset[str] | None] = {
    "$count": None,
    "$count_distinct": None,
    "$sum": _NUMBERS,
    "$avg": _NUMBERS,
    "$min": ORDERED,
    "$max": ORDERED,
}


@dataclass(frozen=True, slots=True)
class Measure:
    """One aggregate column: ``alias`` is ``op`` over ``field`` (None: every row)."""

    alias: str
    op: str
    field: str | None


def check_measures(spec: ModelSpec, value: Any, path: str = "aggregate") -> list[Measure]:
    """``{"total_amount": {"$sum": "total"}, "n": {"$count": "*"}}`` -> Measures."""
    if not isinstance(value, Mapping):
        raise refused(path, "a dict of alias -> {'$sum': field}, like {'n': {'$count': '*'}}", None)
    measures = []
    for alias, spec_value in value.items():
        at = f"{path}.{alias}"
        if not isinstance(alias, str) or not alias or alias.startswith("$"):
            raise refused(at, "an alias is a non-empty str that does not start with '$'")
        if not isinstance(spec_value, Mapping) or len(spec_value) != 1:
            raise refused(at, "expects one operator and its field, like {'$sum': 'total'}")
        [(op, field)] = spec_value.items()
        measures.append(_measure(spec, alias, op, field, f"{at}.{op}"))
    return measures


def _measure(spec: ModelSpec, alias: str, op: Any, field: Any, at: str) -> Measure:
    if op not in _TAKES:
        known = list(_TAKES)
        raise refused(at, f"unknown aggregate{suggest(str(op), known)} Known: {', '.join(known)}")
    if field == "*" and op == "$count":
        return Measure(alias, op, None)
    if not isinstance(field, str) or field not in spec.fields:
        fields = ", ".join(spec.fields)
        star = " (or '*' to count rows)" if op == "$count" else ""
        raise refused(at, f"expects a field of {spec.name}{star}; {spec.name} has: {fields}")
    kind = spec.fields[field].type
    takes = _TAKES[op]
    if (takes is not None and kind.name not in takes) or (takes is None and kind.is_json):
        raise refused(at, f"{op} does not apply to '{field}', {a_kind(kind.name)} field", field)
    return Measure(alias, op, field)


def _keep(value: Any) -> Any:
    return value


#: A sum comes back as its field's type (PostgreSQL sums bigints into NUMERIC, for one).
_SUM_TYPES: dict[str, Callable[[Any], Any]] = {"int": int, "float": float}


def _sum(column: Operand, dialect: Dialect) -> sa.ColumnElement[Any]:
    if column.type.name == "Decimal":
        return dialect.decimal_sum(column.expr)
    return sa.func.sum(column.expr)


class Aggregation:
    """A checked aggregate query over one model, ready to run against its filtered rows."""

    def __init__(
        self,
        spec: ModelSpec,
        dialect: Dialect,
        group_by: Sequence[str],
        measures: Sequence[Measure],
        having: Any = None,
        sort: Any = None,
        limit: int | None = None,
    ) -> None:
        columns = model_operands(spec, spec.t)
        self.groups = [columns[name] for name in group_by]
        operands: dict[str, Operand] = {g.name: g for g in self.groups}
        self.converters: list[Callable[[Any], Any]] = [_keep] * len(self.groups)
        for measure in measures:
            if measure.alias in operands:
                raise refused(
                    f"aggregate.{measure.alias}",
                    "this alias is also a group_by field; name it otherwise",
                )
            operand, convert = self._operand(measure, columns, dialect)
            operands[measure.alias] = operand
            self.converters.append(convert)
        self.names = list(operands)
        namespace = Namespace(dialect, "This aggregate", operands)
        self.having = compile_filter(namespace, having, "having")
        self.sort = compile_sort(namespace, sort, self.groups)
        self.limit = limit
        self.columns = [o.expr.label(f"m{i}") for i, o in enumerate(operands.values())]

    @staticmethod
    def _operand(
        measure: Measure, columns: Mapping[str, Operand], dialect: Dialect
    ) -> tuple[Operand, Callable[[Any], Any]]:
        count = FIELD_TYPES[int]
        if measure.field is None:
            return Operand(measure.alias, count, False, sa.func.count()), int
        column = columns[measure.field]
        expr = column.expr
        if measure.op == "$count":
            return Operand(measure.alias, count, False, sa.func.count(expr)), int
        if measure.op == "$count_distinct":
            return Operand(measure.alias, count, False, sa.func.count(sa.distinct(expr))), int
        if measure.op == "$avg":
            average: sa.ColumnElement[float] = as_double(_sum(column, dialect)).op(
                "/", return_type=sa.Double()
            )(sa.func.nullif(sa.func.count(expr), 0))
            return Operand(measure.alias, FIELD_TYPES[float], True, average), float
        if measure.op == "$sum":
            convert = _SUM_TYPES.get(column.type.name, _keep)
            return Operand(measure.alias, column.type, True, _sum(column, dialect)), convert
        extreme = getattr(sa.func, measure.op[1:])(expr)
        return Operand(measure.alias, column.type, True, extreme), _keep

    def run(
        self,
        conn: Connection,
        table: sa.Table,
        where: Sequence[sa.ColumnElement[bool]],
        scope: Scope,
    ) -> list[dict[str, Any]]:
        stmt = sa.select(*self.columns).select_from(table).where(*where)
        if self.groups:
            stmt = stmt.group_by(*(g.expr for g in self.groups))
        stmt = stmt.having(*self.having.clauses(scope)).order_by(*self.sort.order_by)
        if self.limit is not None:
            stmt = stmt.limit(self.limit)
        names, converters = self.names, self.converters
        return [
            {
                name: None if value is None else convert(value)
                for name, convert, value in zip(names, converters, row, strict=True)
            }
            for row in conn.execute(stmt)
        ]
