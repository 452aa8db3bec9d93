"""Soft delete: deletes keep the row, reads hide it, a restore brings it back, on every backend."""

from __future__ import annotations

import pytest

from dataflow import IntegrityError, NotFoundError, ValidationError
from tests.dataflow.conftest import count_rows, failure, run_node


@pytest.fixture
def shop(db):
    @db.model
    class Customer:
        name: str
        email: str
        __dataflow__ = {"soft_delete": True}
        __indexes__ = [{"name": "ux_customers_email", "fields": ["email"], "unique": True}]

    @db.model
    class Order:
        customer_id: int
        total: float
        __dataflow__ = {"soft_delete": True}

    ann = run_node("CustomerCreateNode", {"name": "Ann", "email": "ann@x"})["id"]
    bob = run_node("CustomerCreateNode", {"name": "Bob", "email": "bob@x"})["id"]
    run_node(
        "OrderBulkCreateNode",
        {"data": [{"customer_id": ann, "total": 10.0}, {"customer_id": bob, "total": 5.0}]},
    )
    return {"ann": ann, "bob": bob}


def test_a_delete_keeps_the_row_and_every_read_hides_it(db, shop):
    ann = shop["ann"]
    assert run_node("CustomerDeleteNode", {"id": ann}) == {"id": ann, "deleted": True, "soft": True}
    assert isinstance(failure("CustomerReadNode", {"id": ann}), NotFoundError)
    kept = run_node("CustomerReadNode", {"id": ann, "include_deleted": True})
    assert kept["name"] == "Ann" and kept["deleted_at"] is not None
    assert [r["name"] for r in run_node("CustomerListNode")["records"]] == ["Bob"]
    assert run_node("CustomerCountNode") == {"count": 1}
    assert run_node("CustomerCountNode", {"include_deleted": True}) == {"count": 2}
    listed = run_node("CustomerListNode", {"include_deleted": True, "count_total": True})
    assert listed["total"] == 2
    groups = run_node("CustomerAggregateNode", {"aggregate": {"n": {"$count": "*"}}})
    assert groups["records"] == [{"n": 1}]
    assert count_rows(db, "customers") == 2
    # Writes skip it too, and a second delete finds nothing to delete.
    assert isinstance(failure("CustomerUpdateNode", {"id": ann, "name": "x"}), NotFoundError)
    assert isinstance(failure("CustomerDeleteNode", {"id": ann}), NotFoundError)
    updated = run_node("CustomerBulkUpdateNode", {"filter": {}, "update": {"name": "All"}})
    assert updated["updated"] == 1


def test_relation_filters_skip_deleted_rows_unless_asked(shop):
    run_node("CustomerDeleteNode", {"id": shop["ann"]})
    through = {"filter": {"customer": {"name": "Ann"}}}
    assert run_node("OrderCountNode", through) == {"count": 0}
    assert run_node("OrderCountNode", {**through, "include_deleted": True}) == {"count": 1}


def test_bulk_deletes_are_soft_by_default_and_hard_on_request(db, shop):
    soft = run_node("OrderBulkDeleteNode", {"filter": {"total": {"$gt": 6}}})
    assert soft == {"processed": 1, "deleted": 1, "soft": True}
    hard = run_node("OrderBulkDeleteNode", {"filter": {"total": 5.0}, "soft_delete": False})
    assert hard == {"processed": 1, "deleted": 1, "soft": False}
    assert count_rows(db, "orders") == 1
    # Purging what was soft-deleted is a hard delete that reaches deleted rows.
    purge = {"filter": {"deleted_at": {"$not": None}}, "include_deleted": True}
    refused = failure("OrderBulkDeleteNode", purge)
    assert isinstance(refused, ValidationError) and "soft_delete=False" in str(refused)
    purged = run_node("OrderBulkDeleteNode", {**purge, "soft_delete": False})
    assert purged["deleted"] == 1
    assert count_rows(db, "orders") == 0
    run_node("CustomerDeleteNode", {"id": shop["bob"], "soft_delete": False})
    assert count_rows(db, "customers") == 1


def test_restore_brings_a_deleted_row_back(shop):
    ann = shop["ann"]
    run_node("CustomerDeleteNode", {"id": ann})
    restored = run_node("CustomerRestoreNode", {"id": ann})
    assert restored["deleted_at"] is None and restored["name"] == "Ann"
    assert run_node("CustomerCountNode") == {"count": 2}
    assert run_node("CustomerRestoreNode", {"id": ann}) == restored  # not deleted: as it is
    assert isinstance(failure("CustomerRestoreNode", {"id": 999}), NotFoundError)


def test_a_deleted_row_frees_its_unique_key_where_indexes_can_be_partial(shop, backend):
    run_node("CustomerDeleteNode", {"id": shop["ann"]})
    again = {"name": "Ann again", "email": "ann@x"}
    upsert = {"name": "Ann upserted", "email": "ann@x", "conflict_on": ["email"]}
    if backend == "mysql":
        # MariaDB has no partial indexes: the deleted row keeps its key.
        assert isinstance(failure("CustomerCreateNode", again), IntegrityError)
        assert isinstance(failure("CustomerUpsertNode", upsert), IntegrityError)
        bulk = run_node("CustomerBulkUpsertNode", {"data": [upsert | {}], "atomic": False})
        assert bulk["failed"][0]["row"] == 0
        return
    created = run_node("CustomerCreateNode", again)
    assert created["id"] != shop["ann"]
    # An upsert meets the live row, never the deleted one; a restore would now clash.
    assert run_node("CustomerUpsertNode", upsert)["id"] == created["id"]
    bulk = run_node("CustomerBulkUpsertNode", {"data": [{"name": "Ann bulk", "email": "ann@x"}]})
    assert (bulk["inserted"], bulk["updated"]) == (0, 1)
    assert isinstance(failure("CustomerRestoreNode", {"id": shop["ann"]}), IntegrityError)
    deleted = run_node("CustomerReadNode", {"id": shop["ann"], "include_deleted": True})
    assert deleted["name"] == "Ann" and deleted["deleted_at"] is not None


def test_an_upsert_never_takes_over_a_deleted_row_by_its_id(shop):
    ann = shop["ann"]
    run_node("CustomerDeleteNode", {"id": ann})
    row = {"id": ann, "name": "Back?", "email": "new@x", "conflict_on": ["id"]}
    assert isinstance(failure("CustomerUpsertNode", row), IntegrityError)
    assert run_node("CustomerReadNode", {"id": ann, "include_deleted": True})["name"] == "Ann"
