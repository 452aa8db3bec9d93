"""What the gateway needs from a data source: its models, its node types, its errors.

The gateway lives in the workflow core and never imports a database framework; a data source
(a ``DataFlow`` instance, say) describes itself through this protocol instead.

Model operations follow one parameter contract, whatever the source:

=============  ======================================================================
operation      node parameters
=============  ======================================================================
create         the model's writable fields, flat
read           ``id``
update         ``id``, then the fields to change, flat
delete         ``id``
restore        ``id`` (a soft-deleted record comes back); the record
upsert         the fields, flat; ``conflict_on`` (a unique key)
list           ``filter``, ``sort``, ``limit``, ``offset``, ``fields``, ``count_total``
count          ``filter``
aggregate      ``filter``, ``group_by``, ``aggregate``, ``having``, ``sort``, ``limit``
bulk_create    ``data`` (rows), ``batch_size``, ``conflict_resolution``, ``return_ids``
bulk_update    ``filter`` and ``update``
bulk_delete    ``filter``, ``confirm_all``
bulk_upsert    ``data`` (rows), ``conflict_on``, ``update_fields``, ``batch_size``
audit          ``record_id``, ``action_type``, ``date_range``, ``limit``, ``offset``,
               ``count_total``; ``{"records": [entry...], "count", "total", "limit",
               "offset"}``, each entry ``{"id", "model", "record_id", "action", "changes",
               "tenant_id", "actor", "created_at"}``
=============  ======================================================================

A node that takes a ``tenant_id`` parameter receives the caller's tenant as the run parameter
``tenant_id``, and one that takes ``actor`` the caller's subject; callers never pass either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from kailash.nodes.base import MISSING, Node

#: Every operation a model may offer, in the order the gateway lists them.
OPERATIONS = (
    "create",
    "read",
    "update",
    "delete",
    "restore",
    "upsert",
    "list",
    "count",
    "aggregate",
    "bulk_create",
    "bulk_update",
    "bulk_delete",
    "bulk_upsert",
    "audit",
)
BULK_OPERATIONS = ("bulk_create", "bulk_update", "bulk_delete", "bulk_upsert")
#: Running a registered workflow, or a node that belongs to no model.
EXECUTE = "execute"
#: Parameters bound from the caller's credentials (and tenant header), never from a request.
BOUND = ("tenant_id", "actor")


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One field of a model: its Python type and how a create treats it."""

    name: str
    type: type
    nullable: bool = False
    default: Any = MISSING
    primary_key: bool = False
    #: Set by the data source (timestamps, tenant columns); callers never write it.
    read_only: bool = False
    #: Filled by the data source when a create leaves it out (an auto-increment id).
    generated: bool = False

    @property
    def has_default(self) -> bool:
        return self.default is not MISSING

    @property
    def required(self) -> bool:
        """Must a create supply it?"""
        return not (self.nullable or self.has_default or self.read_only or self.generated)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model: its fields and the node type behind each operation it offers."""

    name: str
    #: The URL and CLI segment: ``/api/<plural>``, ``nexus <plural> list``.
    plural: str
    fields: tuple[FieldInfo, ...]
    primary_key: str
    #: Operation name (from OPERATIONS) -> registered node type name.
    operations: Mapping[str, str]
    #: Every statement is scoped to the caller's tenant, so a call needs one.
    tenant_scoped: bool = False
    description: str = ""

    @property
    def writable(self) -> tuple[FieldInfo, ...]:
        return tuple(f for f in self.fields if not f.read_only)

    @property
    def pk(self) -> FieldInfo:
        return next(f for f in self.fields if f.name == self.primary_key)


@dataclass(frozen=True, slots=True)
class Problem:
    """A data source's reading of one of its errors, for the caller."""

    kind: Literal["invalid", "not_found", "conflict", "forbidden"]
    message: str
    #: Where inside the request: a parameter or field name, or a dotted path into a filter.
    field: str | None = None
    #: Extra facts for the caller (say, the current version after a conflict).
    details: Mapping[str, Any] | None = None


@runtime_checkable
class DataSource(Protocol):
    """What ``create_gateway(dataflow_integration=...)`` and Nexus need from a data source."""

    @property
    def nodes(self) -> Mapping[str, type[Node]]:
        """Every node type the source registered, by name (model operations and custom ones)."""
        ...

    @property
    def tenant_id_header(self) -> str:
        """The request header that names the tenant, unless the gateway's config says otherwise."""
        ...

    def describe_models(self) -> Sequence[ModelInfo]:
        """The models to serve."""
        ...

    def explain_error(self, error: BaseException) -> Problem | None:
        """What an error raised by one of the source's nodes means to a caller, or None."""
        ...


@runtime_checkable
class ChangeSource(Protocol):
    """A data source that tells of its committed writes (served at ``/ws/changes``)."""

    def subscribe_changes(self, listener: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call ``listener`` with ``{"model", "action", "ids", "count", "tenant_id", "at"}``
        for each committed write, from the writing thread; return the unsubscribe."""
        ...
