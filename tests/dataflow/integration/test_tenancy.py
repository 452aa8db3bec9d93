"""Multi-tenant models: every statement of every node stays inside one tenant, on every backend."""

from __future__ import annotations

import asyncio
import threading

import pytest

from dataflow import (
    DataFlow,
    IntegrityError,
    InvalidFilterError,
    NotFoundError,
    TenantIsolationError,
)
from kailash import AsyncLocalRuntime, LocalRuntime, NodeExecutionError, WorkflowBuilder
from tests.dataflow.conftest import count_rows, failure, run_node

pytestmark = pytest.mark.app_role


def define(db: DataFlow) -> DataFlow:
    @db.model
    class Customer:
        name: str
        email: str
        __dataflow__ = {"multi_tenant": True}
        __indexes__ = [{"name": "ux_customers_email", "fields": ["email"], "unique": True}]

    @db.model
    class Order:
        customer_id: int
        total: float
        status: str = "pending"
        __dataflow__ = {"multi_tenant": True}

    return db


@pytest.fixture
def shop(db):
    define(db)
    ids = {}
    for tenant in ("t1", "t2"):
        ann = run_node(
            "CustomerCreateNode", {"name": "Ann", "email": "ann@x", "tenant_id": tenant}
        )["id"]
        bob = run_node(
            "CustomerCreateNode", {"name": f"Bob {tenant}", "email": "bob@x", "tenant_id": tenant}
        )["id"]
        orders = run_node(
            "OrderBulkCreateNode",
            {
                "data": [{"customer_id": ann, "total": 10.0}, {"customer_id": bob, "total": 5.0}],
                "return_ids": True,
                "tenant_id": tenant,
            },
        )["ids"]
        ids[tenant] = {"ann": ann, "bob": bob, "orders": orders}
    return ids


def test_reads_counts_and_aggregates_see_only_the_tenants_rows(shop):
    t1 = {"tenant_id": "t1"}
    listed = run_node("CustomerListNode", {**t1, "count_total": True})
    assert {r["id"] for r in listed["records"]} == {shop["t1"]["ann"], shop["t1"]["bob"]}
    assert listed["total"] == 2
    assert {r["tenant_id"] for r in listed["records"]} == {"t1"}
    assert run_node("CustomerCountNode", t1) == {"count": 2}
    paged, params = [], {**t1, "limit": 1, "sort": ["-id"]}
    while True:
        page = run_node("CustomerListNode", params)
        paged += [r["id"] for r in page["records"]]
        if page["next_cursor"] is None:
            break
        params["after"] = page["next_cursor"]
    assert paged == [shop["t1"]["bob"], shop["t1"]["ann"]]
    sums = run_node("OrderAggregateNode", {**t1, "aggregate": {"sum": {"$sum": "total"}}})
    assert sums["records"] == [{"sum": 15.0}]
    assert run_node("CustomerReadNode", {**t1, "id": shop["t1"]["ann"]})["email"] == "ann@x"
    error = failure("CustomerReadNode", {**t1, "id": shop["t2"]["ann"]})
    assert isinstance(error, NotFoundError)


def test_writes_by_id_or_by_filter_never_reach_another_tenant(shop):
    other = shop["t2"]["ann"]
    for node, params in [
        ("CustomerUpdateNode", {"id": other, "name": "x"}),
        ("CustomerDeleteNode", {"id": other}),
    ]:
        assert isinstance(failure(node, {**params, "tenant_id": "t1"}), NotFoundError)
    changed = run_node(
        "CustomerBulkUpdateNode",
        {"filter": {}, "update": {"name": "renamed"}, "tenant_id": "t1"},
    )
    assert changed == {"processed": 2, "updated": 2}
    by_rows = run_node(
        "CustomerBulkUpdateNode",
        {"data": [{"id": other, "name": "taken"}], "tenant_id": "t1"},
    )
    assert by_rows["updated"] == 0
    deleted = run_node(
        "OrderBulkDeleteNode", {"filter": {}, "confirm_all": True, "tenant_id": "t1"}
    )
    assert deleted["deleted"] == 2
    names = {r["name"] for r in run_node("CustomerListNode", {"tenant_id": "t2"})["records"]}
    assert names == {"Ann", "Bob t2"}
    assert run_node("OrderCountNode", {"tenant_id": "t2"}) == {"count": 2}


def test_unique_keys_are_per_tenant_and_upserts_only_meet_their_own_rows(shop):
    upserted = run_node(
        "CustomerUpsertNode", {"email": "ann@x", "name": "Ann 2", "tenant_id": "t1"}
    )
    assert upserted["id"] == shop["t1"]["ann"] and upserted["name"] == "Ann 2"
    named = {"email": "ann@x", "name": "Ann 3", "conflict_on": ["tenant_id", "email"]}
    assert run_node("CustomerUpsertNode", {**named, "tenant_id": "t1"})["id"] == upserted["id"]
    bulk = run_node(
        "CustomerBulkUpsertNode",
        {
            "data": [{"email": "bob@x", "name": "Bob 3"}, {"email": "cat@x", "name": "Cat"}],
            "tenant_id": "t1",
        },
    )
    assert (bulk["inserted"], bulk["updated"]) == (1, 1)
    skipped = run_node(
        "CustomerBulkCreateNode",
        {
            "data": [{"email": "ann@x", "name": "no"}],
            "conflict_resolution": "skip",
            "tenant_id": "t1",
        },
    )
    assert skipped["skipped"] == 1
    # Another tenant's row holds the primary key: the upsert is refused, not redirected.
    other = shop["t2"]["ann"]
    error = failure(
        "CustomerUpsertNode",
        {"id": other, "email": "z@x", "name": "takeover", "conflict_on": ["id"], "tenant_id": "t1"},
    )
    assert isinstance(error, IntegrityError)
    partial = run_node(
        "CustomerBulkUpsertNode",
        {
            "data": [{"id": other, "email": "z@x", "name": "takeover"}],
            "conflict_on": ["id"],
            "atomic": False,
            "tenant_id": "t1",
        },
    )
    assert partial["updated"] == partial["inserted"] == 0 and partial["failed"][0]["row"] == 0
    t2 = {
        r["email"]: r["name"] for r in run_node("CustomerListNode", {"tenant_id": "t2"})["records"]
    }
    assert t2 == {"ann@x": "Ann", "bob@x": "Bob t2"}


def test_relation_filters_only_follow_rows_of_the_tenant(shop):
    # Both tenants have a customer named Ann; t1's orders of "Bob t2" do not exist.
    found = run_node("OrderListNode", {"filter": {"customer": {"name": "Ann"}}, "tenant_id": "t1"})[
        "records"
    ]
    assert [r["customer_id"] for r in found] == [shop["t1"]["ann"]]
    none = run_node(
        "OrderCountNode", {"filter": {"customer": {"name": "Bob t2"}}, "tenant_id": "t1"}
    )
    assert none == {"count": 0}


def test_a_row_may_only_point_at_a_row_of_its_own_tenant(db, shop):
    theirs = shop["t2"]["ann"]
    attempts = [
        ("OrderCreateNode", {"customer_id": theirs, "total": 1.0}),
        ("OrderUpdateNode", {"id": shop["t1"]["orders"][0], "customer_id": theirs}),
        ("OrderBulkCreateNode", {"data": [{"customer_id": theirs, "total": 1.0}]}),
        (
            "OrderBulkUpsertNode",
            {"data": [{"id": shop["t1"]["orders"][0], "customer_id": theirs, "total": 1.0}]},
        ),
        ("OrderBulkUpdateNode", {"filter": {}, "update": {"customer_id": theirs}}),
    ]
    for node_type, params in attempts:
        error = failure(node_type, {**params, "tenant_id": "t1"})
        assert isinstance(error, IntegrityError), (node_type, error)
        assert "foreign key" in str(error).lower(), str(error)
    with_t1 = run_node("OrderListNode", {"tenant_id": "t1", "sort": ["id"]})["records"]
    assert [r["customer_id"] for r in with_t1] == [shop["t1"]["ann"], shop["t1"]["bob"]]
    assert count_rows(db, "orders") == 4
    moved = run_node(
        "OrderUpdateNode",
        {"id": shop["t1"]["orders"][1], "customer_id": shop["t1"]["ann"], "tenant_id": "t1"},
    )
    assert moved["customer_id"] == shop["t1"]["ann"]


def test_context_binding_reaches_both_runtimes_and_not_other_threads(db):
    define(db)
    with db.tenant("t1"):
        LocalRuntime().execute(_create("a@x"))
        asyncio.run(AsyncLocalRuntime().execute(_create("b@x")))  # nodes run on a worker thread
        seen: list[Exception] = []
        worker = threading.Thread(target=lambda: seen.append(_count_error()))
        worker.start()
        worker.join()
        assert isinstance(seen[0], TenantIsolationError)  # a new thread has no binding
        assert run_node("CustomerCountNode") == {"count": 2}
        refused = failure("CustomerCountNode", {"tenant_id": "t2"})
        assert isinstance(refused, TenantIsolationError)
    with db.tenant("t2"):
        assert run_node("CustomerCountNode") == {"count": 0}
    results, _ = LocalRuntime().execute(_count_workflow(), parameters={"tenant_id": "t1"})
    assert results["n"] == {"count": 2}


def _create(email: str):
    builder = WorkflowBuilder()
    builder.add_node("CustomerCreateNode", "create", {"name": "Ann", "email": email})
    return builder.build()


def _count_workflow():
    builder = WorkflowBuilder()
    builder.add_node("CustomerCountNode", "n", {})
    return builder.build()


def _count_error() -> Exception:
    try:
        LocalRuntime().execute(_count_workflow())
    except NodeExecutionError as exc:
        return exc.cause
    raise AssertionError("counting without a tenant was not refused")


def test_strict_isolation_refuses_every_operation_without_a_tenant(shop):
    for node, params in [
        ("CustomerListNode", {}),
        ("CustomerReadNode", {"id": shop["t1"]["ann"]}),
        ("CustomerCreateNode", {"name": "x", "email": "x@x"}),
        ("CustomerBulkDeleteNode", {"filter": {}, "confirm_all": True}),
        ("OrderAggregateNode", {"aggregate": {"n": {"$count": "*"}}}),
    ]:
        error = failure(node, params)
        assert isinstance(error, TenantIsolationError), node
        assert "tenant_id" in str(error)


def test_permissive_isolation_acts_on_every_tenant_but_never_creates_without_one(url):
    db = define(DataFlow(url, tenant_isolation="permissive"))
    for tenant in ("t1", "t2"):
        run_node("CustomerCreateNode", {"name": "Ann", "email": "a@x", "tenant_id": tenant})
    assert run_node("CustomerCountNode") == {"count": 2}
    assert run_node("CustomerCountNode", {"filter": {"tenant_id": "t2"}}) == {"count": 1}
    changed = run_node("CustomerBulkUpdateNode", {"filter": {}, "update": {"name": "All"}})
    assert changed["updated"] == 2
    assert run_node("CustomerCountNode", {"tenant_id": "t1"}) == {"count": 1}
    error = failure("CustomerCreateNode", {"name": "x", "email": "x@x"})
    assert isinstance(error, TenantIsolationError)
    db.close()


def test_a_tenant_id_in_a_filter_or_in_rows_must_be_the_operations_tenant(db, shop):
    same = run_node("CustomerCountNode", {"filter": {"tenant_id": "t1"}, "tenant_id": "t1"})
    assert same == {"count": 2}
    error = failure("CustomerListNode", {"filter": {"tenant_id": "t2"}, "tenant_id": "t1"})
    assert isinstance(error, TenantIsolationError) and "'t2'" in str(error)
    with pytest.raises(InvalidFilterError, match="filter.tenant_id"):
        run_node("CustomerCountNode", {"filter": {"tenant_id": {"$ne": "t1"}}, "tenant_id": "t1"})
    rows = [{"name": "Dan", "email": "dan@x", "tenant_id": "t1"}]
    assert run_node("CustomerBulkCreateNode", {"data": rows, "tenant_id": "t1"})["inserted"] == 1
    rows = [{"name": "Eve", "email": "eve@x", "tenant_id": "t2"}]
    error = failure("CustomerBulkCreateNode", {"data": rows, "tenant_id": "t1"})
    assert isinstance(error, TenantIsolationError) and "row 0" in str(error)
    assert count_rows(db, "customers") == 5


def test_dataflow_wide_multi_tenant_makes_every_model_tenant_scoped(url):
    db = DataFlow(url, multi_tenant=True)

    @db.model
    class Note:
        text: str

    @db.model
    class Tag:
        label: str
        __dataflow__ = {"multi_tenant": False}

    run_node("NoteCreateNode", {"text": "mine", "tenant_id": "t1"})
    assert run_node("NoteCountNode", {"tenant_id": "t2"}) == {"count": 0}
    assert run_node("TagCreateNode", {"label": "shared"})["label"] == "shared"
    assert db.describe_models()[0].tenant_scoped and not db.describe_models()[1].tenant_scoped
    db.close()
