"""The audit log: every write leaves a row in its own transaction, and AuditNode reads them."""

from __future__ import annotations

import datetime as dt

import pytest

from dataflow import DataFlow, IntegrityError
from kailash import LocalRuntime, NodeExecutionError, WorkflowBuilder
from tests.dataflow.conftest import count_rows, run_node

pytestmark = pytest.mark.app_role

T1 = {"tenant_id": "t1"}


@pytest.fixture
def orders(db):
    @db.model
    class Order:
        ref: str
        total: float
        status: str = "pending"
        __dataflow__ = {"multi_tenant": True, "soft_delete": True, "audit_log": True}
        __indexes__ = [{"name": "ux_orders_ref", "fields": ["ref"], "unique": True}]

    return db


def audit(**params) -> list[dict]:
    return run_node("OrderAuditNode", {**T1, **params})["records"]


def actions(**params) -> list[tuple[str, int]]:
    return [(r["action"], r["record_id"]) for r in audit(**params)]


def test_single_writes_record_their_changes_tenant_and_actor(orders):
    order = run_node("OrderCreateNode", {"ref": "a", "total": 5.0, "actor": "ann", **T1})
    oid = order["id"]
    run_node("OrderUpdateNode", {"id": oid, "total": 7.5, **T1})
    run_node("OrderDeleteNode", {"id": oid, **T1})
    with orders.actor("bob"):
        run_node("OrderRestoreNode", {"id": oid, **T1})
    run_node("OrderUpsertNode", {"ref": "a", "total": 7.5, "status": "paid", **T1})
    run_node("OrderUpsertNode", {"ref": "b", "total": 1.0, **T1})
    run_node("OrderDeleteNode", {"id": oid, "soft_delete": False, **T1})
    rows = audit()
    assert [(r["action"], r["record_id"]) for r in rows] == [
        ("create", oid),
        ("update", oid),
        ("soft_delete", oid),
        ("restore", oid),
        ("update", oid),
        ("create", oid + 1),
        ("delete", oid),
    ]
    create, update, soft, restore, upsert, _, delete = rows
    assert create["changes"] == {
        "ref": {"old": None, "new": "a"},
        "total": {"old": None, "new": 5.0},
        "status": {"old": None, "new": "pending"},
    }
    assert update["changes"] == {"total": {"old": 5.0, "new": 7.5}}
    assert soft["changes"]["deleted_at"]["old"] is None
    assert dt.datetime.fromisoformat(soft["changes"]["deleted_at"]["new"])
    assert (
        list(restore["changes"]) == ["deleted_at"]
        and restore["changes"]["deleted_at"]["new"] is None
    )
    assert upsert["changes"] == {"status": {"old": "pending", "new": "paid"}}
    assert delete["changes"]["ref"] == {"old": "a", "new": None}
    assert [r["actor"] for r in rows[:4]] == ["ann", None, None, "bob"]
    assert {r["tenant_id"] for r in rows} == {"t1"}
    assert all(r["created_at"].tzinfo is not None for r in rows)


def test_bulk_writes_record_every_row_they_change(orders):
    data = [{"ref": f"r{i}", "total": float(i)} for i in range(5)]
    ids = run_node("OrderBulkCreateNode", {"data": data, "return_ids": True, **T1})["ids"]
    run_node(
        "OrderBulkUpdateNode",
        {"filter": {"total": {"$lt": 2}}, "update": {"total": {"$multiply": 10}}, **T1},
    )
    run_node("OrderBulkUpdateNode", {"data": [{"id": ids[4], "status": "paid"}], **T1})
    upserted = [{"ref": "r3", "total": 30.0}, {"ref": "r9", "total": 9.0}]
    run_node("OrderBulkUpsertNode", {"data": upserted, **T1})
    run_node(
        "OrderBulkCreateNode",
        {"data": [{"ref": "r2", "total": 0.0}], "conflict_resolution": "skip", **T1},
    )
    run_node("OrderBulkDeleteNode", {"filter": {"ref": {"$in": ["r0", "r9"]}}, **T1})
    run_node(
        "OrderBulkDeleteNode",
        {"filter": {"ref": "r0"}, "soft_delete": False, "include_deleted": True, **T1},
    )
    found = actions()
    r9 = ids[4] + 1
    assert found[:5] == [("create", i) for i in ids]
    assert sorted(found[5:7]) == [("update", ids[0]), ("update", ids[1])]
    assert found[7:] == [
        ("update", ids[4]),
        ("create", r9),
        ("update", ids[3]),
        ("soft_delete", ids[0]),
        ("soft_delete", r9),
        ("delete", ids[0]),
    ]
    multiplied = audit(record_id=ids[1], action_type="update")[0]["changes"]
    assert multiplied == {"total": {"old": 1.0, "new": 10.0}}
    assert audit(record_id=ids[3], action_type="update")[0]["changes"] == {
        "total": {"old": 3.0, "new": 30.0}
    }


def test_audit_node_filters_by_record_action_dates_and_tenant_and_pages(orders):
    for i in range(3):
        run_node("OrderCreateNode", {"ref": f"a{i}", "total": 1.0, **T1})
    first = run_node("OrderCreateNode", {"ref": "x", "total": 1.0, "tenant_id": "t2"})
    run_node("OrderUpdateNode", {"id": first["id"], "total": 2.0, "tenant_id": "t2"})
    today = dt.datetime.now(dt.UTC).date()
    day = dt.timedelta(days=1)
    assert len(audit(date_range={"start": today.isoformat(), "end": today.isoformat()})) == 3
    assert audit(date_range={"start": today + day}) == []
    assert audit(date_range={"end": today - day}) == []
    now = dt.datetime.now(dt.UTC)
    assert len(audit(date_range={"start": now - dt.timedelta(hours=1), "end": now})) == 3
    page = run_node("OrderAuditNode", {**T1, "limit": 2, "offset": 1, "count_total": True})
    assert (page["count"], page["total"], page["limit"], page["offset"]) == (2, 3, 2, 1)
    theirs = run_node("OrderAuditNode", {"tenant_id": "t2", "action_type": ["update"]})
    assert [(r["action"], r["record_id"]) for r in theirs["records"]] == [("update", first["id"])]
    assert audit(record_id=first["id"]) == []
    with pytest.raises(Exception, match="date_range"):
        run_node("OrderAuditNode", {**T1, "date_range": {"start": "soon"}})


def test_a_failed_or_rolled_back_write_leaves_no_audit_row(orders):
    run_node("OrderCreateNode", {"ref": "a", "total": 1.0, **T1})
    with pytest.raises(NodeExecutionError) as caught:
        run_node("OrderCreateNode", {"ref": "a", "total": 2.0, **T1})
    assert isinstance(caught.value.cause, IntegrityError)
    bad = [{"ref": "b", "total": 1.0}, {"ref": "a", "total": 1.0}]
    with pytest.raises(NodeExecutionError):
        run_node("OrderBulkCreateNode", {"data": bad, **T1})
    with pytest.raises(RuntimeError), orders.transaction():
        run_node("OrderCreateNode", {"ref": "c", "total": 1.0, **T1})
        run_node("OrderBulkUpdateNode", {"filter": {}, "update": {"total": 3.0}, **T1})
        raise RuntimeError("the block fails after its writes")
    scope = WorkflowBuilder()
    scope.add_node("TransactionScopeNode", "tx", {})
    scope.add_node("OrderCreateNode", "create", {"ref": "d", "total": 1.0, **T1})
    scope.add_node("OrderCreateNode", "clash", {"ref": "a", "total": 1.0, **T1})
    scope.add_connection("tx", "result", "create", "input")
    scope.add_connection("create", "result", "clash", "input")
    with pytest.raises(NodeExecutionError):
        LocalRuntime().execute(scope.build())
    assert actions() == [("create", 1)]
    assert count_rows(orders, "dataflow_audit_log") == 1


def test_audit_logging_on_the_dataflow_audits_every_model(url):
    db = DataFlow(url, audit_logging=True)

    @db.model
    class Note:
        text: str

    @db.model
    class Draft:
        text: str
        __dataflow__ = {"audit_log": False}

    note = run_node("NoteCreateNode", {"text": "hi"})
    run_node("DraftCreateNode", {"text": "hi"})
    records = run_node("NoteAuditNode", {})["records"]
    assert [(r["action"], r["record_id"], r["tenant_id"]) for r in records] == [
        ("create", note["id"], None)
    ]
    assert "DraftAuditNode" not in db.nodes
    db.close()
