"""Parameter checks derived from one model: its field values, filters, keys and options."""

from __future__ import annotations

from typing import Any

from dataflow.dialects import Dialect
from dataflow.features.soft_delete import SoftDelete
from dataflow.features.tenancy import Tenancy
from dataflow.models.spec import FieldSpec, ModelSpec
from dataflow.models.types import Refused, decimal_checker
from dataflow.nodes.base import Checker, check_bool, check_names
from dataflow.query.filters import compile_filter
from dataflow.query.memo import Memo
from dataflow.query.namespace import ModelNamespace


def field_checker(field: FieldSpec, dialect: Dialect) -> Checker:
    """Coerce a value to the field's type as ``dialect`` stores it; None only where nullable."""
    coerce = field.type.coerce
    if field.type.name == "Decimal":
        as_decimal, fits = coerce, decimal_checker(dialect)

        def coerce(value: Any) -> Any:
            return fits(as_decimal(value))

    if field.nullable:
        return lambda value: None if value is None else coerce(value)

    def check(value: Any) -> Any:
        if value is None:
            raise Refused(
                f"a {field.type.name}; '{field.name}' is not Optional, so None is refused"
            )
        return coerce(value)

    return check


def filter_checker(namespace: ModelNamespace) -> Checker:
    """The one filter check of every node that takes a filter."""
    return Memo(lambda value: compile_filter(namespace, value))


def conflict_checker(spec: ModelSpec) -> Checker:
    """``conflict_on``: the fields of one of the model's unique keys."""
    names = check_names(spec.fields)
    # Every unique key of a multi-tenant model holds within the tenant: naming it is allowed.
    implied = ("tenant_id",) if spec.feature(Tenancy) else ()

    def check(value: Any) -> list[str]:
        fields = [f for f in names(value) if f not in implied]
        if tuple(fields) not in spec.unique_sets and set(fields) not in map(set, spec.unique_sets):
            sets = ", ".join(str(list(s)) for s in spec.unique_sets)
            raise Refused(
                f"a unique key of {spec.name} ({sets}); declare others in __indexes__ with "
                "'unique': True"
            )
        return fields

    return check


def soft_delete_checker(spec: ModelSpec) -> Checker:
    """``soft_delete``: True only on a model that soft-deletes."""

    def check(value: Any) -> bool:
        value = check_bool(value)
        if value and spec.feature(SoftDelete) is None:
            raise Refused(
                f"False: {spec.name} has no soft delete; add 'soft_delete': True to its "
                "__dataflow__ to keep deleted rows"
            )
        return value

    return check
