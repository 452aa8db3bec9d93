"""Generated nodes as saga compensations: a model's own nodes undo the steps of that model.

A step's ``compensation`` may name a generated node of the step's model instead of a node
taking ``step_input`` and ``step_output``:

- a ``Create`` step is undone by the model's ``Delete``: the created row is deleted for good,
  on a soft-delete model too (it never should have existed, and a soft-deleted leftover would
  still hold its unique keys on MariaDB and show with ``include_deleted``);
- an ``Update`` step by the model's ``Update``: the values the step overwrote are written
  back (only the fields the step set);
- a ``Delete`` step by the model's ``Restore`` or ``Create``: the row is put back as it was
  before the step, whether the step soft-deleted it (``deleted_at`` is cleared) or deleted it
  (the row is inserted again with its id, values and ``created_at``).

What an undo needs (the overwritten values, the deleted row) is read, locked, in the step's
own transaction before the step runs, and kept in the saga log with the step's output, in
that transaction: recovery after a crash undoes the step from the log just as the live saga
would. That is why the step's node must belong to the DataFlow that runs the saga. A row the
undo should touch that is gone by then (deleted by someone else) leaves nothing to undo, and
an undo that finds its work already done does nothing, so each undo can run again safely.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from dataflow.errors import NotFoundError
from dataflow.features.soft_delete import SoftDelete
from dataflow.features.versioning import Versioning
from dataflow.transactions.steps import Step, run_node
from kailash.errors import NodeExecutionError
from kailash.nodes.registry import NAMESPACE_PARAM

if TYPE_CHECKING:
    from dataflow.features.base import Scope
    from dataflow.nodes.crud import ModelNode
    from dataflow.store import Store
    from kailash.nodes.base import Node

# Not "dataflow.saga": each record of that logger follows a durable write of the saga's state.
log = logging.getLogger("dataflow.transactions")

#: What a step's own parameters say about whom it acted for; its undo acts for the same.
_ACTING = ("tenant_id", "actor", NAMESPACE_PARAM)


def capture(db: Store, step: Step, inputs: dict[str, Any]) -> dict[str, Any] | None:
    """What undoing an Update or Delete step needs, read and locked before the step runs.

    Runs inside the step's transaction; None when the row is not there (the step will fail).
    """
    if step.undo not in ("Update", "Delete"):
        return None
    node, scope, checked = _target(db, step, inputs)
    pk = checked.get("id")
    with node.connect(scope) as conn:
        old = node.statements().get(conn, pk, scope, lock=True)
    if old is None:
        return None
    if step.undo == "Delete":
        return {"id": pk, "row": old}
    model = node.model
    changed = [n for n in checked if n in model.writable and n != model.primary_key]
    return {"id": pk, "values": {n: old[n] for n in changed}}


def undo(db: Store, step: Step, record: dict[str, Any]) -> None:
    """Undo a completed step from what its record in the saga log holds."""
    inputs = record["input"] or {}
    captured = record.get("undo")
    compensation: Any = db.node_type(str(step.compensation))
    model = compensation.model
    acting = {k: inputs[k] for k in _ACTING if k in inputs and compensation.accepts(k)}
    if step.undo == "Create":
        params: dict[str, Any] = {"id": record["output"][model.primary_key], "soft_delete": False}
        if compensation.accepts("include_deleted"):
            params["include_deleted"] = True  # a soft-deleted row is removed too
        _run(compensation, step, {**params, **acting}, "the created row is gone already")
    elif step.undo == "Update" and captured is not None:
        params = {"id": captured["id"], **captured["values"]}
        versioning = model.feature(Versioning)
        if versioning is not None and versioning.require:
            params["version"] = record["output"]["version"]  # refused if written since
        _run(compensation, step, {**params, **acting}, "the updated row is gone")
    elif step.undo == "Delete" and captured is not None:
        _put_back(db, step, inputs, captured)


def _target(
    db: Store, step: Step, inputs: dict[str, Any]
) -> tuple[ModelNode, Scope, dict[str, Any]]:
    """An instance of the step's node, the scope the step acts in, and its checked inputs."""
    cls: Any = db.node_type(str(step.node), inputs.get(NAMESPACE_PARAM))
    node: ModelNode = cls(step.name, {})
    checked = cls.check(step.name, inputs, partial=True)
    scope = node.scope(
        checked.get("tenant_id"), checked.get("actor"), checked.get("include_deleted", False)
    )
    return node, scope, checked


def _run(cls: type[Node], step: Step, params: dict[str, Any], gone: str) -> None:
    try:
        run_node(cls, step.name, params)
    except NodeExecutionError as exc:
        if not isinstance(exc.cause, NotFoundError):
            raise
        log.warning("compensation of step '%s': %s; nothing to undo", step.name, gone)


def _put_back(db: Store, step: Step, inputs: dict[str, Any], captured: dict[str, Any]) -> None:
    """Bring back the row a Delete step removed: restore it, or insert it again."""
    node, scope, _ = _target(db, step, inputs)
    scope.include_deleted = False
    pk, row = captured["id"], captured["row"]
    statements = node.statements()
    soft = node.model.feature(SoftDelete)
    anywhere = dataclasses.replace(scope, include_deleted=True)
    with node.connect(scope) as conn:
        current = statements.get(conn, pk, anywhere, lock=True)
        if current is None:
            statements.reinsert(conn, row, scope)
        elif soft is not None and soft.is_deleted(current) and not soft.is_deleted(row):
            statements.restore(conn, pk, scope)
        else:
            log.info("compensation of step '%s': the row is back already", step.name)
            return
    node.announce(scope, "restore", ids=[pk])
