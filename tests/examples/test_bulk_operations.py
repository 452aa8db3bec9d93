"""The guide's "Bulk Operations (High Performance)" block, unchanged, on every backend.

The block only adds three nodes to a workflow; each is then run as the guide wrote it. The
third (a soft-delete cleanup filtered with ``$not``) needs the filter operators and the
soft-delete option that are still to come, and is refused with an error saying so.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

import pytest

from dataflow import DataFlow, ValidationError
from kailash import LocalRuntime, WorkflowBuilder
from tests.examples.guide import block, run_block

HEADING = "Bulk Operations (High Performance)"


class RecordingBuilder(WorkflowBuilder):
    """A real builder that also keeps each node's parameters, to run the nodes one by one."""

    def __init__(self) -> None:
        super().__init__()
        self.added: dict[str, tuple[str, dict[str, Any]]] = {}

    def add_node(self, node_type: Any, node_id: Any = None, params: Any = None) -> str:
        self.added[node_id] = (node_type, dict(params or {}))
        return super().add_node(node_type, node_id, params)


def run_alone(workflow: RecordingBuilder, node_id: str) -> dict[str, Any]:
    node_type, params = workflow.added[node_id]
    builder = WorkflowBuilder()
    builder.add_node(node_type, node_id, params)
    results, _ = LocalRuntime().execute(builder.build())
    return results[node_id]


def test_the_block_is_the_guides():
    code = block(HEADING)
    assert '"conflict_resolution": "upsert",  # skip, error, upsert' in code
    assert '"update": {"price": {"$multiply": 0.9}},  # 10% discount' in code


def test_the_bulk_block_runs_unchanged(url: str) -> None:
    db = DataFlow(url)

    @db.model
    class Product:
        name: str
        price: float
        category: str = "electronics"
        deleted_at: Optional[dt.datetime] = None

    workflow = RecordingBuilder()
    run_block(HEADING, {"workflow": workflow})
    assert list(workflow.added) == ["import", "price_update", "cleanup"]

    imported = run_alone(workflow, "import")
    assert (imported["processed"], imported["inserted"], imported["skipped"]) == (2, 2, 0)
    assert len(imported["ids"]) == 2

    updated = run_alone(workflow, "price_update")
    assert updated == {"processed": 2, "updated": 2}
    prices = {r["name"]: r["price"] for r in _list(db)}
    assert prices == {"Product A": pytest.approx(90.0), "Product B": pytest.approx(180.0)}

    with pytest.raises(ValidationError, match=r"cleanup.*(\$not|soft delete)"):
        workflow.build()
    db.close()


def _list(db: DataFlow) -> list[dict[str, Any]]:
    builder = WorkflowBuilder()
    builder.add_node("ProductListNode", "list", {})
    results, _ = LocalRuntime().execute(builder.build())
    return results["list"]["records"]
