"""Generate each model's node classes, with parameter checks derived from its fields."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dataflow.features.audit import Audit
from dataflow.features.context import check_actor
from dataflow.features.soft_delete import SoftDelete
from dataflow.features.tenancy import Tenancy, check_tenant
from dataflow.features.versioning import Versioning, check_version
from dataflow.models.spec import ModelSpec
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
from dataflow.nodes.model_checks import (
    conflict_checker,
    field_checker,
    filter_checker,
    soft_delete_checker,
)
from dataflow.query.memo import Memo
from dataflow.query.namespace import ModelNamespace
from dataflow.query.sort import compile_sort, decode_cursor
from kailash.nodes.base import NodeParameter

if TYPE_CHECKING:
    from dataflow.store import Store


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
    filter_check = filter_checker(namespace)
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
                "soft_delete": soft_delete_checker(spec),
                **(with_deleted if soft else {}),
                **writes,
            },
            ("id",),
        ),
        (
            "Upsert",
            crud.UpsertNode,
            {**values, "conflict_on": conflict_checker(spec), **writes},
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
