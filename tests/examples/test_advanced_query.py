"""The guide's "Advanced Query Patterns" block, unchanged, on every backend."""

from __future__ import annotations

import pytest

from kailash import LocalRuntime, WorkflowBuilder
from tests.dataflow.conftest import run_node
from tests.examples.guide import block, run_block

HEADING = "Advanced Query Patterns"


@pytest.fixture
def shop(db):
    @db.model
    class Customer:
        email: str
        name: str

    @db.model
    class Order:
        customer_id: int
        total: float
        status: str = "pending"

    emails = ["ann@enterprise.com", "bob@enterprise.com", "cat@small.com"]
    ann, bob, cat = (
        run_node("CustomerCreateNode", {"email": e, "name": e[:3]})["id"] for e in emails
    )
    orders = [
        (ann, 150.0, "pending"),  # found
        (ann, 99.99, "processing"),  # total below 100
        (bob, 100.0, "processing"),  # found: $gte includes 100
        (bob, 500.0, "shipped"),  # status
        (cat, 1000.0, "pending"),  # not an enterprise customer
        (ann, 2000.0, "pending"),  # found
        (bob, 950.0, "pending"),  # found
        (bob, 600.0, "shipped"),
    ]
    ids = [
        run_node("OrderCreateNode", {"customer_id": c, "total": t, "status": s})["id"]
        for c, t, s in orders
    ]
    return {"ann": ann, "bob": bob, "cat": cat, "orders": ids}


def test_the_block_is_the_guides():
    code = block(HEADING)
    assert '"customer": {' in code and '"$regex": ".*@enterprise.com"' in code
    assert 'workflow.add_node("OrderAggregateNode", "analytics", {' in code


def test_search_and_analytics_return_the_right_rows(shop):
    scope = run_block(HEADING, {"workflow": WorkflowBuilder()})
    results, _ = LocalRuntime().execute(scope["workflow"].build())

    search = results["search"]
    o = shop["orders"]
    # Newest first: the orders were created in list order.
    assert [r["id"] for r in search["records"]] == [o[6], o[5], o[2], o[0]]
    assert search["count"] == 4
    assert (search["limit"], search["offset"]) == (100, 0)

    analytics = results["analytics"]["records"]
    assert analytics == [
        {
            "status": "pending",
            "customer_id": shop["ann"],
            "total_amount": 2150.0,
            "order_count": 2,
            "avg_order": 1075.0,
        },
        {
            "status": "shipped",
            "customer_id": shop["bob"],
            "total_amount": 1100.0,
            "order_count": 2,
            "avg_order": 550.0,
        },
    ]
    assert results["analytics"]["count"] == 2
