"""The bulk nodes' simple cases (the full contract lives with the bulk work)."""

from __future__ import annotations

import pytest

from dataflow import ValidationError
from kailash import WorkflowBuilder
from tests.dataflow.conftest import count_rows, run_node


@pytest.fixture
def products(db):
    @db.model
    class Product:
        name: str
        price: float
        category: str = "misc"

    return db


def test_bulk_create_inserts_every_row(products):
    data = [{"name": f"p{i}", "price": float(i)} for i in range(25)]
    out = run_node("ProductBulkCreateNode", {"data": data, "batch_size": 10, "return_ids": True})
    assert out["processed"] == out["inserted"] == 25
    assert out["batches"] == 3
    assert len(out["ids"]) == len(set(out["ids"])) == 25
    assert count_rows(products, "products") == 25


def test_bulk_create_refuses_a_bad_row_naming_it(products):
    builder = WorkflowBuilder()
    with pytest.raises(ValidationError, match="row 1 field 'price' expects a float, got str"):
        builder.add_node(
            "ProductBulkCreateNode",
            "b",
            {"data": [{"name": "a", "price": 1.0}, {"name": "b", "price": "x"}]},
        )
        builder.build()
    assert count_rows(products, "products") == 0


def test_bulk_update_and_delete_by_filter(products):
    run_node(
        "ProductBulkCreateNode",
        {
            "data": [
                {"name": f"p{i}", "price": 1.0, "category": "a" if i % 2 else "b"} for i in range(6)
            ]
        },
    )
    out = run_node("ProductBulkUpdateNode", {"filter": {"category": "a"}, "update": {"price": 2.0}})
    assert out == {"processed": 3, "updated": 3}
    assert run_node("ProductCountNode", {"filter": {"price": 2.0}}) == {"count": 3}
    out = run_node("ProductBulkDeleteNode", {"filter": {"category": "b"}})
    assert out == {"processed": 3, "deleted": 3, "soft": False}
    assert count_rows(products, "products") == 3


def test_bulk_upsert_counts_inserts_and_updates(products):
    run_node("ProductBulkCreateNode", {"data": [{"id": 1, "name": "a", "price": 1.0}]})
    out = run_node(
        "ProductBulkUpsertNode",
        {"data": [{"id": 1, "name": "a2", "price": 5.0}, {"id": 2, "name": "b", "price": 2.0}]},
    )
    assert out == {"processed": 2, "inserted": 1, "updated": 1}
    assert run_node("ProductReadNode", {"id": 1})["name"] == "a2"
    assert count_rows(products, "products") == 2
