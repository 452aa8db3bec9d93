"""Bulk nodes: many rows per statement, one transaction per call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dataflow.models.spec import ModelSpec
from dataflow.models.types import Refused
from dataflow.nodes.base import (
    Checker,
    DataFlowNode,
    check_bool,
    check_choice,
    check_names,
    check_positive,
)
from dataflow.nodes.crud import ModelNode

if TYPE_CHECKING:
    from dataflow.query.filters import Filter
    from dataflow.records import Records


def _rows_checker(spec: ModelSpec, values: Mapping[str, Checker]) -> Checker:
    def check(data: Any) -> list[dict[str, Any]]:
        if not isinstance(data, list | tuple):
            raise Refused(f"a list of dicts, got {type(data).__name__}")
        rows = []
        for i, row in enumerate(data):
            if not isinstance(row, Mapping):
                raise Refused(f"a list of dicts; row {i} is a {type(row).__name__}")
            out = {}
            for name, value in row.items():
                checker = values.get(name)
                if checker is None:
                    raise Refused(
                        f"rows of {spec.name} fields; row {i} has unknown field '{name}' "
                        f"(fields: {', '.join(spec.user_fields)})"
                    )
                try:
                    out[name] = checker(value)
                except Refused as exc:
                    raise Refused(f"valid rows; row {i} field '{name}' expects {exc}") from None
            rows.append(out)
        return rows

    return check


def _update_checker(spec: ModelSpec, values: Mapping[str, Checker]) -> Checker:
    def check(update: Any) -> dict[str, Any]:
        if not isinstance(update, Mapping) or not update:
            raise Refused("a non-empty dict of field -> new value")
        if set(update) == {"$set"}:
            update = update["$set"]
        out = {}
        for name, value in update.items():
            checker = values.get(name)
            if checker is None or name == spec.primary_key:
                raise Refused(
                    f"fields of {spec.name} to set; '{name}' is not one "
                    f"(fields: {', '.join(spec.user_fields)})"
                )
            try:
                out[name] = checker(value)
            except Refused as exc:
                raise Refused(f"a valid value for '{name}': {exc}") from None
        return out

    return check


class BulkCreateNode(ModelNode):
    def run(
        self,
        data: list[dict[str, Any]],
        batch_size: int = 1000,
        conflict_resolution: str = "error",
        return_ids: bool = False,
    ) -> dict[str, Any]:
        records = self.records()
        for i, row in enumerate(data):
            absent = [n for n in self.model.required if n not in row]
            if absent:
                raise self.refuse(
                    self.node_id, f"row {i}: missing required field(s) {', '.join(absent)}", row=i
                )
        ids: list[Any] = []
        batches = 0
        scope = self.scope()
        with self.dataflow.connection(self.label(self.node_id)) as conn:
            for start in range(0, len(data), batch_size):
                chunk = [records.stamp_insert(r, scope) for r in data[start : start + batch_size]]
                if return_ids:
                    ids.extend(records.insert(conn, row, scope)["id"] for row in chunk)
                else:
                    conn.execute(records.table.insert(), chunk)
                batches += 1
        out: dict[str, Any] = {
            "processed": len(data),
            "inserted": len(data),
            "updated": 0,
            "skipped": 0,
            "batches": batches,
        }
        if return_ids:
            out["ids"] = ids
        return out


class BulkUpdateNode(ModelNode):
    def run(self, filter: Filter, update: dict[str, Any]) -> dict[str, Any]:
        records = self.records()
        scope = self.scope()
        changes = records.stamp_update(update, scope)
        stmt = sa.update(records.table).where(*records.where(scope, filter)).values(changes)
        with self.dataflow.connection(self.label(self.node_id)) as conn:
            updated = conn.execute(stmt).rowcount
        return {"processed": updated, "updated": updated}


class BulkDeleteNode(ModelNode):
    def run(
        self,
        filter: Filter | None = None,
        confirm_all: bool = False,
        confirmation_required: bool = True,
        soft_delete: bool = False,
    ) -> dict[str, Any]:
        if not filter and not confirm_all:
            raise self.refuse(
                self.node_id,
                "an empty filter would delete every row; pass confirm_all=True to mean it",
                param="filter",
            )
        records = self.records()
        with self.dataflow.connection(self.label(self.node_id)) as conn:
            where = records.where(self.scope(), filter)
            deleted = conn.execute(sa.delete(records.table).where(*where)).rowcount
        return {"processed": deleted, "deleted": deleted, "soft": False}


class BulkUpsertNode(ModelNode):
    def run(
        self,
        data: list[dict[str, Any]],
        conflict_on: list[str] | None = None,
        update_fields: list[str] | None = None,
        batch_size: int = 1000,
    ) -> dict[str, Any]:
        records: Records = self.records()
        keys = conflict_on or [self.model.primary_key]
        inserted = updated = 0
        scope = self.scope()
        with self.dataflow.connection(self.label(self.node_id)) as conn:
            for i, row in enumerate(data):
                missing = [k for k in keys if k not in row]
                if missing:
                    raise self.refuse(
                        self.node_id, f"row {i}: no value for conflict key {missing[0]}", row=i
                    )
                match = sa.and_(
                    *(records.table.c[k] == row[k] for k in keys), *records.where(scope)
                )
                existing = conn.execute(sa.select(records.pk).where(match)).first()
                if existing is None:
                    records.insert(conn, row, scope)
                    inserted += 1
                else:
                    changes = {
                        k: v
                        for k, v in row.items()
                        if k not in keys and (update_fields is None or k in update_fields)
                    }
                    if changes:
                        records.update(conn, existing[0], changes, scope)
                    updated += 1
        return {"processed": len(data), "inserted": inserted, "updated": updated}


def checks(
    spec: ModelSpec, values: Mapping[str, Checker], filter_check: Checker
) -> list[tuple[str, type[DataFlowNode], dict[str, Checker]]]:
    rows = _rows_checker(spec, values)
    from dataflow.nodes.generated import _conflict_checker, _soft_delete_checker

    return [
        (
            "BulkCreate",
            BulkCreateNode,
            {
                "data": rows,
                "batch_size": check_positive,
                "conflict_resolution": check_choice("error"),
                "return_ids": check_bool,
            },
        ),
        (
            "BulkUpdate",
            BulkUpdateNode,
            {"filter": filter_check, "update": _update_checker(spec, values)},
        ),
        (
            "BulkDelete",
            BulkDeleteNode,
            {
                "filter": filter_check,
                "confirm_all": check_bool,
                "confirmation_required": check_bool,
                "soft_delete": _soft_delete_checker(spec),
            },
        ),
        (
            "BulkUpsert",
            BulkUpsertNode,
            {
                "data": rows,
                "conflict_on": _conflict_checker(spec),
                "update_fields": check_names(spec.writable),
                "batch_size": check_positive,
            },
        ),
    ]
