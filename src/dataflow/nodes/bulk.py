"""Bulk nodes: BulkCreate, BulkUpdate, BulkDelete and BulkUpsert of one model.

Rows are checked as they stream (a generator is never held whole), so a bad row is refused
when the node runs, with its index and field; literal rows are not scanned for ``${...}``
templates, because row values are data.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dataflow.bulk.batches import BadRow, RowChecker
from dataflow.bulk.run import BulkRun, Mode, Outcome, Plan
from dataflow.bulk.updates import Change, delete_where, update_checker, update_where
from dataflow.features.tenancy import check_tenant
from dataflow.features.versioning import Versioning, check_version
from dataflow.models.spec import ModelSpec
from dataflow.models.types import Refused
from dataflow.nodes.base import (
    Checker,
    DataFlowNode,
    check_bool,
    check_choice,
    check_names,
    check_optional_count,
    check_positive,
)
from dataflow.nodes.crud import ModelNode, delete_mode
from dataflow.nodes.model_checks import conflict_checker, soft_delete_checker
from kailash.nodes.base import find_template

if TYPE_CHECKING:
    from dataflow.features.base import Scope
    from dataflow.query.filters import Filter


def _where(checked: Filter | None, scope: Scope) -> list[sa.ColumnElement[bool]]:
    """The WHERE clauses of a ``filter`` the filter checker accepted, for this operation."""
    return checked.clauses(scope) if checked else []


class RowsParam:
    """The ``data`` parameter: any iterable of row dicts; ``rows`` checks each row as it streams."""

    def __init__(self, rows: RowChecker) -> None:
        self.rows = rows

    def __call__(self, value: Any) -> Iterable[Any]:
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
            hint = ""
            if isinstance(value, str) and find_template(value):
                hint = "; templates are not evaluated, feed rows with workflow.add_connection"
            raise Refused(f"a list or iterable of row dicts, got {type(value).__name__}{hint}")
        return value


def check_progress(value: Any) -> bool | Callable[[int, int | None], Any]:
    if isinstance(value, bool) or callable(value):
        return value
    raise Refused(f"True (a progress bar) or a callable taking (rows_done, total), got {value!r}")


def check_optional_positive(value: Any) -> int | None:
    return None if value is None else check_positive(value)


def check_update_fields(names: Checker) -> Checker:
    def check(value: Any) -> list[str]:
        fields = names(value)
        if not fields:
            raise Refused(
                "at least one field name; to leave existing rows alone use "
                "BulkCreate with conflict_resolution 'skip'"
            )
        return fields

    return check


class BulkNode(ModelNode):
    """Shared by the nodes that write rows given in ``data``."""

    snapshot_params = False

    @classmethod
    def validate_config(
        cls, node_id: str, config: Mapping[str, Any], connected: frozenset[str]
    ) -> None:
        rest = {k: v for k, v in config.items() if k != "data"}
        super().validate_config(node_id, rest, connected)
        if "data" in config:
            cls.check(node_id, {"data": config["data"]}, partial=True)

    def write(
        self,
        scope: Scope,
        mode: Mode,
        data: Iterable[Any],
        batch_size: int | None,
        **options: Any,
    ) -> Outcome:
        size = batch_size or self.store.config.bulk_batch_size or 1000
        rows = self.checks["data"].rows  # type: ignore[attr-defined]
        plan = Plan(mode, rows, batch_size=size, **options)
        run = BulkRun(self.store, self.statements(), scope, plan, self._bad_row)
        return run.run(data)

    def _bad_row(self, bad: BadRow) -> Exception:
        return self.refuse(
            self.node_id, f"parameter 'data', {bad}", param="data", field=bad.field, row=bad.index
        )

    def conflict_keys(
        self, data: Iterable[Any], given: list[str] | None
    ) -> tuple[tuple[str, ...], Iterable[Any]]:
        """``conflict_on``, else the first unique field set the first row carries, else the pk."""
        if given:
            return tuple(given), data
        first: Any = None
        if isinstance(data, Sequence):  # peek without losing the length progress reports
            first = data[0] if data else None
        else:
            rows = iter(data)
            for first in rows:
                data = itertools.chain([first], rows)
                break
            else:
                data = ()
        if isinstance(first, Mapping):
            for fields in self.model.unique_sets:
                if all(first.get(f) is not None for f in fields):
                    return tuple(fields), data
        return (self.model.primary_key,), data


def _report(outcome: Outcome, atomic: bool, *names: str) -> dict[str, Any]:
    """The node's output: the named counts, and the failed rows when not atomic."""
    out = {name: getattr(outcome, name) for name in names}
    if not atomic:
        out["failed"] = outcome.failed
    return out


_MODES: dict[str, Mode] = {"error": "insert", "skip": "skip", "upsert": "upsert"}


class BulkCreateNode(BulkNode):
    def run(
        self,
        _scope: Scope,
        data: Iterable[Any],
        batch_size: int | None = None,
        conflict_resolution: str = "error",
        conflict_on: list[str] | None = None,
        return_ids: bool = False,
        atomic: bool = True,
        progress: Any = False,
    ) -> dict[str, Any]:
        mode = _MODES[conflict_resolution]
        keys: tuple[str, ...] = ()
        if mode == "upsert":
            self.refuse_unversioned("conflict_resolution 'upsert'", "conflict_resolution")
        if mode != "insert":
            keys, data = self.conflict_keys(data, conflict_on)
        elif conflict_on:
            raise self.refuse(
                self.node_id,
                "conflict_on says which rows clash, which only matters with "
                "conflict_resolution 'skip' or 'upsert'",
                param="conflict_on",
            )
        outcome = self.write(
            _scope,
            mode,
            data,
            batch_size,
            keys=keys,
            return_ids=return_ids,
            atomic=atomic,
            progress=progress,
        )
        out = _report(outcome, atomic, "processed", "inserted", "updated", "skipped", "batches")
        ids = None
        if return_ids:
            out["ids"] = outcome.ids
            ids = [i for i in outcome.ids or () if i is not None]
        self.announce(_scope, "bulk_create", outcome.inserted + outcome.updated, ids)
        return out


class BulkUpsertNode(BulkNode):
    def run(
        self,
        _scope: Scope,
        data: Iterable[Any],
        conflict_on: list[str] | None = None,
        update_fields: list[str] | None = None,
        batch_size: int | None = None,
        atomic: bool = True,
        progress: Any = False,
    ) -> dict[str, Any]:
        self.refuse_unversioned("an upsert")
        keys, data = self.conflict_keys(data, conflict_on)
        allowed = frozenset(update_fields) if update_fields is not None else None
        outcome = self.write(
            _scope,
            "upsert",
            data,
            batch_size,
            keys=keys,
            update_fields=allowed,
            atomic=atomic,
            progress=progress,
        )
        self.announce(_scope, "bulk_upsert", outcome.inserted + outcome.updated)
        return _report(outcome, atomic, "processed", "inserted", "updated")


class BulkUpdateNode(BulkNode):
    """By filter: every matching row, ``limit`` (or ``batch_size``) rows per statement, in one
    transaction, at most ``max_rows``. By ``data``: the rows, batch by batch."""

    def run(
        self,
        _scope: Scope,
        filter: Filter | None = None,
        update: dict[str, Change] | None = None,
        data: Iterable[Any] | None = None,
        limit: int | None = None,
        max_rows: int | None = None,
        batch_size: int | None = None,
        atomic: bool = True,
        progress: Any = False,
    ) -> dict[str, Any]:
        if data is not None:
            given = (
                ("filter", filter),
                ("update", update),
                ("limit", limit),
                ("max_rows", max_rows),
            )
            for name, value in given:
                if value is not None:
                    raise self.refuse(
                        self.node_id,
                        f"'{name}' goes with a filter update; rows in 'data' carry their own "
                        "id and values. Give either filter + update, or data.",
                        param=name,
                    )
            outcome = self.write(
                _scope, "update", data, batch_size, atomic=atomic, progress=progress
            )
            self.announce(_scope, "bulk_update", outcome.updated)
            return _report(outcome, atomic, "processed", "updated")
        if update is None or filter is None:
            name = "update" if update is None else "filter"
            raise self.refuse(
                self.node_id,
                f"missing '{name}': give 'filter' and 'update' ('filter': {{}} changes every "
                "row), or 'data' rows that carry their id",
                param=name,
            )
        self.refuse_unversioned("an update by filter", "filter")
        if limit is not None and batch_size is not None and limit != batch_size:
            raise self.refuse(
                self.node_id,
                "'limit' and 'batch_size' both set how many rows each statement of a filter "
                "update changes; give one (to stop after some rows, use 'max_rows')",
                param="batch_size",
            )
        batch = limit if limit is not None else batch_size
        statements = self.statements()
        with self.connect(_scope) as conn:
            where = _where(filter, _scope)
            updated = update_where(conn, statements, _scope, where, update, batch, max_rows)
        self.announce(_scope, "bulk_update", updated)
        return {"processed": updated, "updated": updated}


class BulkDeleteNode(ModelNode):
    def run(
        self,
        _scope: Scope,
        filter: Filter | None = None,
        soft_delete: bool | None = None,
        confirmation_required: bool = True,
        confirm_all: bool = False,
    ) -> dict[str, Any]:
        if not filter and confirmation_required and not confirm_all:
            raise self.refuse(
                self.node_id,
                "an empty filter would delete every row; pass confirm_all=True to mean it",
                param="filter",
            )
        soft = delete_mode(self, _scope, soft_delete)
        statements = self.statements()
        with self.connect(_scope) as conn:
            deleted = delete_where(conn, statements, _scope, _where(filter, _scope), soft)
        self.announce(_scope, "bulk_soft_delete" if soft else "bulk_delete", deleted)
        return {"processed": deleted, "deleted": deleted, "soft": soft}


def checks(
    spec: ModelSpec,
    values: Mapping[str, Checker],
    filter_check: Checker,
    reads: Mapping[str, Checker],
    writes: Mapping[str, Checker],
    soft: bool,
) -> list[tuple[str, type[DataFlowNode], dict[str, Checker]]]:
    """Each bulk node's name, base class and parameter checks.

    ``reads`` and ``writes`` check the parameters that say whom a read or a write acts for;
    ``soft`` says whether the model soft-deletes.
    """
    pk = spec.primary_key
    changes = {n: c for n, c in values.items() if n != pk}
    conflict = conflict_checker(spec)
    streaming = {
        "batch_size": check_positive,
        "atomic": check_bool,
        "progress": check_progress,
        **writes,
    }
    # Rows may repeat the operation's tenant, and an update row name the version it read.
    given = {"tenant_id": check_tenant} if "tenant_id" in reads else {}
    versioning = spec.feature(Versioning)
    update_given = {**given, "version": check_version} if versioning else given
    key = (pk, "version") if versioning and versioning.require else (pk,)
    create_rows = RowsParam(RowChecker(spec, {**values, **given}, spec.required))
    update_rows = RowsParam(
        RowChecker(
            spec,
            {**values, **update_given},
            key,
            "fields (the id and the fields to change)",
            changes=True,
        )
    )
    return [
        (
            "BulkCreate",
            BulkCreateNode,
            {
                "data": create_rows,
                "conflict_resolution": check_choice("error", "skip", "upsert"),
                "conflict_on": conflict,
                "return_ids": check_bool,
                **streaming,
            },
        ),
        (
            "BulkUpdate",
            BulkUpdateNode,
            {
                "filter": filter_check,
                "update": update_checker(spec, changes),
                "data": update_rows,
                "limit": check_optional_positive,
                "max_rows": check_optional_count,
                **streaming,
            },
        ),
        (
            "BulkDelete",
            BulkDeleteNode,
            {
                "filter": filter_check,
                "soft_delete": soft_delete_checker(spec),
                "confirmation_required": check_bool,
                "confirm_all": check_bool,
                **({"include_deleted": check_bool} if soft else {}),
                **writes,
            },
        ),
        (
            "BulkUpsert",
            BulkUpsertNode,
            {
                "data": create_rows,
                "conflict_on": conflict,
                "update_fields": check_update_fields(check_names(spec.writable)),
                **streaming,
            },
        ),
    ]
