"""DataFlow as a data source of the HTTP gateway (``kailash.servers.gateway.DataSource``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dataflow.errors import (
    DatabaseError,
    IntegrityError,
    InvalidFilterError,
    NotFoundError,
    TenantIsolationError,
    ValidationError,
    VersionConflictError,
)
from dataflow.features.tenancy import Tenancy
from dataflow.models.parse import table_name_for
from dataflow.models.spec import ModelSpec
from kailash.nodes.base import Node
from kailash.servers.gateway.protocol import OPERATIONS, FieldInfo, ModelInfo, Problem

#: Gateway operation -> the generated node's suffix (``create`` -> ``UserCreateNode``).
_SUFFIX = {op: "".join(part.title() for part in op.split("_")) for op in OPERATIONS}


def describe_model(spec: ModelSpec, nodes: Mapping[str, type[Node]]) -> ModelInfo:
    fields = tuple(
        FieldInfo(
            name,
            field.type.python,
            nullable=field.nullable,
            default=field.default,
            primary_key=field.primary_key,
            read_only=field.managed,
            generated=field.autoincrement,
        )
        for name, field in spec.fields.items()
    )
    operations = {
        op: f"{spec.name}{suffix}Node"
        for op, suffix in _SUFFIX.items()
        if f"{spec.name}{suffix}Node" in nodes
    }
    return ModelInfo(
        name=spec.name,
        plural=table_name_for(spec.name),
        fields=fields,
        primary_key=spec.primary_key,
        operations=operations,
        tenant_scoped=spec.feature(Tenancy) is not None,
        description=(spec.cls.__doc__ or "").strip(),
    )


def explain_error(error: BaseException) -> Problem | None:
    """The caller's reading of a DataFlow error; None for errors that are the server's."""
    if isinstance(error, InvalidFilterError):
        return Problem("invalid", str(error), error.path or error.param)
    if isinstance(error, ValidationError):
        where = error.param or error.field
        if where is not None and error.row is not None:
            where = f"{where}.{error.row}"
        return Problem("invalid", str(error), where)
    if isinstance(error, NotFoundError):
        return Problem("not_found", str(error))
    if isinstance(error, VersionConflictError):
        details: dict[str, Any] = {"current_version": error.current_version}
        return Problem("conflict", str(error), "version", details)
    if isinstance(error, IntegrityError):
        # Its message names the constraint, never the row's values (database/driver_errors.py).
        return Problem("conflict", str(error))
    if isinstance(error, TenantIsolationError):
        return Problem("forbidden", str(error))
    if isinstance(error, DatabaseError) and (error.sqlstate or "").startswith("22"):
        # SQLSTATE class 22, a data exception: a value out of range, too long, malformed.
        return Problem("invalid", str(error))
    return None
