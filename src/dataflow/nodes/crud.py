"""Single-record and query nodes: Create, Read, Update, Delete, Restore, Upsert, List, Count."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from dataflow.database.change_feed import ChangeEvent
from dataflow.errors import NotFoundError, TenantIsolationError
from dataflow.features.base import Scope
from dataflow.features.tenancy import Tenancy, missing_tenant
from dataflow.features.versioning import Versioning
from dataflow.models.types import Refused
from dataflow.nodes.base import DataFlowNode

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from dataflow.query.filters import Filter
    from dataflow.query.namespace import ModelNamespace
    from dataflow.query.sort import Cursor, Sort
    from dataflow.statements.model import ModelStatements


class ModelNode(DataFlowNode):
    """A node that acts on one model's table."""

    #: The model's names for filters and sorts, and its order when none is given.
    namespace: ClassVar[ModelNamespace]
    default_sort: ClassVar[Sort]
    #: The model's tenancy, if it is multi-tenant.
    tenancy: ClassVar[Tenancy | None] = None

    def statements(self) -> ModelStatements:
        return self.store.statements(self.model.name)

    def prepare(self, inputs: dict[str, Any]) -> dict[str, Any]:
        checked = super().prepare(inputs)
        pop = checked.pop
        checked["_scope"] = self.scope(
            pop("tenant_id", None), pop("actor", None), pop("include_deleted", False)
        )
        return checked

    @cached_property
    def _label(self) -> str:
        return self.label(self.node_id)

    def scope(
        self, tenant_id: Any = None, actor: Any = None, include_deleted: bool = False
    ) -> Scope:
        """What this run of the node acts for (the features read it).

        The tenant is the node's ``tenant_id`` (a run parameter arrives as one), else the one
        bound with ``db.tenant()``; the two may not disagree. Likewise the actor.
        """
        store = self.store
        label = self._label
        bound = store.bound_tenant.get()
        if tenant_id is not None and bound is not None and tenant_id != bound:
            raise TenantIsolationError(
                f"{label}: tenant_id {tenant_id!r} is not the tenant {bound!r} bound with "
                "db.tenant(); an operation acts for one tenant"
            )
        tenant = bound if tenant_id is None else tenant_id
        tenancy = self.tenancy
        if tenant is None and tenancy is not None and tenancy.strict:
            raise missing_tenant(label, self.model.name)
        actor = store.bound_actor.get() if actor is None else actor
        return Scope(label, include_deleted=include_deleted, tenant_id=tenant, actor=actor)

    def connect(self, scope: Scope, write: bool = True) -> AbstractContextManager[Connection]:
        """A transactional connection acting for ``scope``."""
        return self.store.connection(scope.label, write, scope)

    def announce(
        self, scope: Scope, action: str, count: int = 1, ids: Sequence[Any] | None = None
    ) -> None:
        """Tell change listeners (see dataflow.database.change_feed) what this run wrote."""
        database = self.store.database
        if database.changes.listening and count:
            event = ChangeEvent(self.model.name, action, count, ids, scope.tenant_id)
            database.announce(event)

    def refuse_unversioned(self, what: str, param: str | None = None) -> None:
        """Refuse a write that cannot name versions, on a model whose updates must."""
        versioning = self.model.feature(Versioning)
        if versioning is not None and versioning.require:
            raise self.refuse(
                self.node_id,
                f"{self.model.name} requires every update to name the version it read, which "
                f"{what} cannot; update records by id with their version",
                param=param,
            )

    def not_found(self, pk: Any, what: str = "") -> NotFoundError:
        return NotFoundError(
            f"{self.label(self.node_id)}: no {what}{self.model.name} with id {pk!r}",
            model=self.model.name,
            record_id=pk,
        )

    @classmethod
    def describe_parameters(cls) -> str:
        fields = cls.model.user_fields
        text = ""
        if any(f in cls.checks for f in fields):
            text = f" {cls.model.name} has fields: {', '.join(fields)}."
        others = [n for n in cls.checks if n not in fields]
        if others:
            text += f" Other parameters: {', '.join(others)}."
        return text


class CreateNode(ModelNode):
    def run(self, _scope: Scope, **values: Any) -> dict[str, Any]:
        statements = self.statements()
        with self.connect(_scope) as conn:
            created = statements.insert(conn, values, _scope)
        self.announce(_scope, "create", ids=[created[self.model.primary_key]])
        return created


class ReadNode(ModelNode):
    def run(self, _scope: Scope, id: Any, raise_on_not_found: bool = True) -> dict[str, Any]:
        statements = self.statements()
        with self.connect(_scope, write=False) as conn:
            found = statements.get(conn, id, _scope)
        if found is None:
            if raise_on_not_found:
                raise self.not_found(id)
            return {}
        return found


class UpdateNode(ModelNode):
    def run(
        self, _scope: Scope, id: Any, version: int | None = None, **values: Any
    ) -> dict[str, Any]:
        statements = self.statements()
        if statements.versioning is None and version is not None:
            values["version"] = version  # a field of the model that happens to be called so
            version = None
        if not values:
            raise self.refuse(
                self.node_id,
                f"nothing to update; pass at least one of: {', '.join(self.model.user_fields)}",
            )
        with self.connect(_scope) as conn:
            found = statements.update(conn, id, values, _scope, version)
            if found is None:
                raise self.not_found(id)
        self.announce(_scope, "update", ids=[id])
        return found


class DeleteNode(ModelNode):
    def run(self, _scope: Scope, id: Any, soft_delete: bool | None = None) -> dict[str, Any]:
        soft = delete_mode(self, _scope, soft_delete)
        statements = self.statements()
        with self.connect(_scope) as conn:
            if not statements.delete(conn, id, _scope, soft):
                raise self.not_found(id)
        self.announce(_scope, "soft_delete" if soft else "delete", ids=[id])
        return {"id": id, "deleted": True, "soft": soft}


def delete_mode(node: ModelNode, scope: Scope, soft_delete: bool | None) -> bool:
    """Whether a delete is soft: as asked, else the model's setting."""
    soft = node.statements().soft_delete is not None if soft_delete is None else soft_delete
    if soft and scope.include_deleted:
        raise node.refuse(
            node.node_id,
            "include_deleted reaches soft-deleted rows, which only a hard delete removes; pass "
            "soft_delete=False with it",
            param="include_deleted",
        )
    return soft


class RestoreNode(ModelNode):
    """Brings a soft-deleted record back; a record that is not deleted is returned as it is."""

    def run(self, _scope: Scope, id: Any) -> dict[str, Any]:
        statements = self.statements()
        with self.connect(_scope) as conn:
            found = statements.restore(conn, id, _scope)
        if found is None:
            raise self.not_found(id)
        self.announce(_scope, "restore", ids=[id])
        return found


class UpsertNode(ModelNode):
    def run(
        self, _scope: Scope, conflict_on: list[str] | None = None, **values: Any
    ) -> dict[str, Any]:
        conflict_on = conflict_on or self._default_conflict(values)
        missing = [n for n in conflict_on if n not in values]
        if missing:
            raise self.refuse(
                self.node_id,
                f"conflict_on names {', '.join(missing)} but no value was given for it",
                param="conflict_on",
            )
        absent = [n for n in self.model.required if n not in values]
        if absent:
            raise self.refuse(
                self.node_id,
                f"missing required field(s) {', '.join(absent)}: an upsert may insert",
                param=absent[0],
            )
        self.refuse_unversioned("an upsert")
        statements = self.statements()
        with self.connect(_scope) as conn:
            record = statements.upsert(conn, values, conflict_on, _scope)
        self.announce(_scope, "upsert", ids=[record[self.model.primary_key]])
        return record

    def _default_conflict(self, values: dict[str, Any]) -> list[str]:
        for fields in self.model.unique_sets:
            if all(f in values for f in fields):
                return list(fields)
        keys = " or ".join(str(list(s)) for s in self.model.unique_sets)
        raise self.refuse(
            self.node_id,
            f"cannot tell which row to update: give conflict_on, or values for {keys}",
            param="conflict_on",
        )


class ListNode(ModelNode):
    def run(
        self,
        _scope: Scope,
        filter: Filter | None = None,
        sort: Sort | None = None,
        limit: int | None = None,
        offset: int = 0,
        after: Cursor | None = None,
        fields: list[str] | None = None,
        count_total: bool = False,
    ) -> dict[str, Any]:
        statements = self.statements()
        sort = sort or self.default_sort
        resume = None
        if after is not None:
            try:
                resume = sort.after(after)
            except Refused as exc:
                raise self.refuse(
                    self.node_id, f"parameter 'after' expects {exc}", param="after"
                ) from None
        # The next page's cursor needs the sort keys, even those ``fields`` leaves out.
        hidden = [n for n in sort.names if n not in fields] if fields else []
        columns = [*fields, *hidden] if fields else None
        fetch = None if limit is None else limit + 1  # one more tells whether a page follows
        with self.connect(_scope, write=False) as conn:
            rows = statements.select(
                conn, _scope, filter, sort.order_by, fetch, offset, columns, resume
            )
            total = statements.count(conn, _scope, filter) if count_total else None
        next_cursor = None
        if limit is not None and len(rows) > limit:
            del rows[limit:]
            next_cursor = sort.cursor(rows[-1]) if rows else None
        if hidden:
            for row in rows:
                for name in hidden:
                    del row[name]
        return {**page(rows, total, limit, offset), "next_cursor": next_cursor}


def page(rows: list[dict[str, Any]], total: int | None, limit: int | None, offset: int) -> dict:
    """A page of records as List and Audit nodes return it."""
    return {"records": rows, "count": len(rows), "total": total, "limit": limit, "offset": offset}


class CountNode(ModelNode):
    def run(self, _scope: Scope, filter: Filter | None = None) -> dict[str, Any]:
        statements = self.statements()
        with self.connect(_scope, write=False) as conn:
            return {"count": statements.count(conn, _scope, filter)}
