"""Generate each model's node classes, with parameter checks derived from its fields."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dataflow.features.audit import Audit
from dataflow.features.context import check_actor
from dataflow.features.soft_delete import SoftDelete
from dataflow.features.tenancy import Tenancy, check_tenant
from dataflow.features.versioning import Versioning, check_version
from dataflow.models.spec import FieldSpec, ModelSpec
from dataflow.models.types import Refused, decimal_checker
from dataflow.nodes import bulk, crud
from dataflow.nodes.aggregate import AggregateNode, aggregate_checks
from dataflow.nodes.audit import AuditNode, check_actions, check_date_range
from dataflow.nodes.base import (
    Checker,
    DataFlowNode,
    check_bool,
    check_count,
    check_names,
    check_optional_count,
)
from dataflow.query.filters import compile_filter
from dataflow.query.memo import Memo
from dataflow.query.namespace import ModelNamespace
from dataflow.query.sort import compile_sort, decode_cursor
from kailash.nodes.base import NodeParameter

if TYPE_CHECKING:
    from dataflow.store import Store


def field_checker(field: FieldSpec, dialect: str) -> Checker:
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


def _filter_checker(namespace: ModelNamespace) -> Checker:
    """The one filter check of every node that takes a filter."""
    return Memo(lambda value: compile_filter(namespace, value))


def _conflict_checker(spec: ModelSpec) -> Checker:
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


def _soft_delete_checker(spec: ModelSpec) -> Checker:
    def check(value: Any) -> bool:
        value = check_bool(value)
        if value and spec.feature(SoftDelete) is None:
            raise Refused(
                f"False: {spec.name} has no soft delete; add 'soft_delete': True to its "
                "__dataflow__ to keep deleted rows"
            )
        return value

    return check


def _params(checks: dict[str, Checker], spec: ModelSpec, required: tuple[str, ...]) -> dict:
    params = {}
    for name in checks:
        field = spec.fields.get(name)
        kind: Any = field.type.python if field is not None else object
        params[name] = NodeParameter(name, kind, required=name in required)
    return params


def generate_nodes(store: Store, spec: ModelSpec) -> list[type[DataFlowNode]]:
    """The node classes of one model, bound to ``store``."""
    pk = spec.fields[spec.primary_key]
    pk_check = field_checker(pk, store.dialect)
    values = {n: field_checker(f, store.dialect) for n, f in spec.writable.items()}
    changes = {n: c for n, c in values.items() if n != spec.primary_key}
    namespace = ModelNamespace(store.models, store.dialect, spec)
    by_pk = [namespace.operands[spec.primary_key]]
    filter_check = _filter_checker(namespace)
    tenancy = spec.feature(Tenancy)
    versioning = spec.feature(Versioning)
    soft = spec.feature(SoftDelete) is not None
    # Whom an operation acts for: every node of a tenant model takes its tenant, and the
    # nodes that write an audited model take the actor the audit log names.
    reads: dict[str, Checker] = {"tenant_id": check_tenant} if tenancy else {}
    writes = {**reads, **({"actor": check_actor} if spec.feature(Audit) else {})}
    with_deleted = {"include_deleted": check_bool}
    query: dict[str, Checker] = {
        "filter": filter_check,
        "sort": Memo(lambda value: compile_sort(namespace, value, by_pk)),
        "limit": check_optional_count,
        "offset": check_count,
        "after": decode_cursor,
        "fields": check_names(spec.fields),
        "count_total": check_bool,
        **with_deleted,
        **reads,
    }
    versions = {"version": check_version} if versioning else {}
    must_version = ("version",) if versioning and versioning.require else ()
    bulk_checks = bulk.checks(spec, values, filter_check, reads, writes, soft)

    table: list[tuple[str, type[DataFlowNode], dict[str, Checker], tuple[str, ...]]] = [
        ("Create", crud.CreateNode, {**values, **writes}, tuple(spec.required)),
        (
            "Read",
            crud.ReadNode,
            {"id": pk_check, "raise_on_not_found": check_bool, **with_deleted, **reads},
            ("id",),
        ),
        (
            "Update",
            crud.UpdateNode,
            {"id": pk_check, **changes, **versions, **writes},
            ("id", *must_version),
        ),
        (
            "Delete",
            crud.DeleteNode,
            {
                "id": pk_check,
                "soft_delete": _soft_delete_checker(spec),
                **(with_deleted if soft else {}),
                **writes,
            },
            ("id",),
        ),
        (
            "Upsert",
            crud.UpsertNode,
            {**values, "conflict_on": _conflict_checker(spec), **writes},
            (),
        ),
        ("List", crud.ListNode, query, ()),
        ("Count", crud.CountNode, {"filter": filter_check, **with_deleted, **reads}, ()),
        (
            "Aggregate",
            AggregateNode,
            {**aggregate_checks(spec, filter_check), **with_deleted, **reads},
            (),
        ),
        *((name, cls, checks, ()) for name, cls, checks in bulk_checks),
    ]
    if soft:
        table.append(("Restore", crud.RestoreNode, {"id": pk_check, **writes}, ("id",)))
    if spec.feature(Audit):
        audit_checks = {
            "record_id": pk_check,
            "action_type": check_actions,
            "date_range": check_date_range,
            "limit": check_optional_count,
            "offset": check_count,
            "count_total": check_bool,
            **reads,
        }
        table.append(("Audit", AuditNode, audit_checks, ()))
    classes = []
    for op, base, checks, required in table:
        name = f"{spec.name}{op}Node"
        attrs: dict[str, Callable[..., Any] | Any] = {
            "store": store,
            "model": spec,
            "namespace": namespace,
            "default_sort": compile_sort(namespace, None, by_pk),
            "checks": checks,
            "required_params": required,
            "tenancy": tenancy,
            "parameters": _params(checks, spec, required),
            "type_name": name,
            "__doc__": f"{op} for the {spec.name} model ({spec.table_name}).",
            "__module__": __name__,
        }
        classes.append(type(name, (base,), attrs))
    return classes
