"""The guide's "Bulk Operations (High Performance)" block, unchanged, on every backend.

The block only adds three nodes to a workflow; each is then run as the guide wrote it. The
third is a soft delete of the rows whose ``deleted_at`` is set: on a soft-delete model those
rows are already deleted and hidden from every operation that does not ask for them, so it
matches nothing and leaves them as they are.
"""

from __future__ import annotations

from typing import Any

import pytest

from dataflow import DataFlow
from kailash import LocalRuntime, WorkflowBuilder
from tests.examples.guide import RecordingBuilder, block, run_alone, run_block

HEADING = "Bulk Operations (High Performance)"


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
        __dataflow__ = {"soft_delete": True}

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

    deleted = imported["ids"][0]
    run_alone(_delete(deleted), "delete")
    cleanup = run_alone(workflow, "cleanup")
    assert cleanup == {"processed": 0, "deleted": 0, "soft": True}
    assert [r["name"] for r in _list(db)] == ["Product B"]
    gone = _list(db, include_deleted=True)
    assert [(r["id"], r["deleted_at"] is not None) for r in gone] == [
        (deleted, True),
        (imported["ids"][1], False),
    ]
    db.close()


def _delete(record_id: int) -> RecordingBuilder:
    builder = RecordingBuilder()
    builder.add_node("ProductDeleteNode", "delete", {"id": record_id})
    return builder


def _list(db: DataFlow, **params: Any) -> list[dict[str, Any]]:
    builder = WorkflowBuilder()
    builder.add_node("ProductListNode", "list", params)
    results, _ = LocalRuntime().execute(builder.build())
    return results["list"]["records"]
