"""Single-record and query nodes: Create, Read, Update, Delete, Upsert, List, Count."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from dataflow.errors import NotFoundError
from dataflow.features.base import Scope
from dataflow.models.types import Refused
from dataflow.nodes.base import DataFlowNode

if TYPE_CHECKING:
    from dataflow.query.filters import Filter
    from dataflow.query.namespace import ModelNamespace
    from dataflow.query.sort import Cursor, Sort
    from dataflow.records import Records


class ModelNode(DataFlowNode):
    """A node that acts on one model's table."""

    #: The model's names for filters and sorts, and its order when none is given.
    namespace: ClassVar[ModelNamespace]
    default_sort: ClassVar[Sort]

    def records(self) -> Records:
        return self.dataflow.records(self.model.name)

    def scope(self, include_deleted: bool = False) -> Scope:
        """What this run of the node acts for (the features read it)."""
        return Scope(self.label(self.node_id), include_deleted=include_deleted)

    def not_found(self, pk: Any) -> NotFoundError:
        return NotFoundError(
            f"{self.label(self.node_id)}: no {self.model.name} with id {pk!r}",
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
    def run(self, **values: Any) -> dict[str, Any]:
        records = self.records()
        with self.dataflow.connection(self.label(self.node_id)) as conn:
            return records.insert(conn, values, self.scope())


class ReadNode(ModelNode):
    def run(
        self, id: Any, raise_on_not_found: bool = True, include_deleted: bool = False
    ) -> dict[str, Any]:
        records = self.records()
        with self.dataflow.connection(self.label(self.node_id), write=False) as conn:
            found = records.get(conn, id, self.scope(include_deleted))
        if found is None:
            if raise_on_not_found:
                raise self.not_found(id)
            return {}
        return found


class UpdateNode(ModelNode):
    def run(self, id: Any, **values: Any) -> dict[str, Any]:
        if not values:
            raise self.refuse(
                self.node_id,
                f"nothing to update; pass at least one of: {', '.join(self.model.user_fields)}",
            )
        records = self.records()
        with self.dataflow.connection(self.label(self.node_id)) as conn:
            found = records.update(conn, id, values, self.scope())
            if found is None:
                raise self.not_found(id)
        return found


class DeleteNode(ModelNode):
    def run(self, id: Any, soft_delete: bool = False) -> dict[str, Any]:
        records = self.records()
        with self.dataflow.connection(self.label(self.node_id)) as conn:
            if not records.delete(conn, id, self.scope()):
                raise self.not_found(id)
        return {"id": id, "deleted": True, "soft": False}


class UpsertNode(ModelNode):
    def run(self, conflict_on: list[str] | None = None, **values: Any) -> dict[str, Any]:
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
        records = self.records()
        with self.dataflow.connection(self.label(self.node_id)) as conn:
            return records.upsert(conn, values, conflict_on, self.scope())

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
        filter: Filter | None = None,
        sort: Sort | None = None,
        limit: int | None = None,
        offset: int = 0,
        after: Cursor | None = None,
        fields: list[str] | None = None,
        count_total: bool = False,
        include_deleted: bool = False,
    ) -> dict[str, Any]:
        records = self.records()
        sort = sort or self.default_sort
        scope = self.scope(include_deleted)
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
        with self.dataflow.connection(self.label(self.node_id), write=False) as conn:
            rows = records.select(
                conn, scope, filter, sort.order_by, fetch, offset, columns, resume
            )
            total = records.count(conn, scope, filter) if count_total else None
        next_cursor = None
        if limit is not None and len(rows) > limit:
            del rows[limit:]
            next_cursor = sort.cursor(rows[-1]) if rows else None
        if hidden:
            for row in rows:
                for name in hidden:
                    del row[name]
        return {
            "records": rows,
            "count": len(rows),
            "total": total,
            "limit": limit,
            "offset": offset,
            "next_cursor": next_cursor,
        }


class CountNode(ModelNode):
    def run(self, filter: Filter | None = None) -> dict[str, Any]:
        records = self.records()
        with self.dataflow.connection(self.label(self.node_id), write=False) as conn:
            return {"count": records.count(conn, self.scope(), filter)}
