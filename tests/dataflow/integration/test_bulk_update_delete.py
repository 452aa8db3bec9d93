"""BulkUpdate (by filter or by rows) and BulkDelete on every backend, with true counts."""

from __future__ import annotations

from typing import Optional

import pytest
import sqlalchemy as sa

from dataflow import IntegrityError, ValidationError
from kailash import NodeExecutionError, WorkflowBuilder
from tests.dataflow.conftest import count_rows, run_node

pytestmark = pytest.mark.app_role


@pytest.fixture
def products(db):
    @db.model
    class Product:
        name: str
        price: float
        stock: int = 0
        category: str = "misc"
        note: Optional[str] = None

    data = [
        {"name": f"p{i}", "price": 10.0, "stock": i, "category": "a" if i % 2 else "b"}
        for i in range(10)
    ]
    run_node("ProductBulkCreateNode", {"data": data})
    return db


def column(db, name: str, where: str = "1 = 1") -> list:
    """One column of the products table in id order, read with plain SQL."""
    with db.database.engine.connect() as conn:
        sql = f"SELECT {name} FROM products WHERE {where} ORDER BY id"
        return list(conn.execute(sa.text(sql)).scalars())


def refused(node: str, params: dict) -> ValidationError:
    builder = WorkflowBuilder()
    builder.add_node(node, "n", params)
    with pytest.raises((ValidationError, NodeExecutionError)) as caught:
        run_node(node, params)
    error = caught.value
    return error.cause if isinstance(error, NodeExecutionError) else error  # type: ignore[return-value]


def test_multiply_on_a_float_column_multiplies(products):
    out = run_node(
        "ProductBulkUpdateNode",
        {"filter": {"category": "a"}, "update": {"price": {"$multiply": 0.9}}},
    )
    assert out == {"processed": 5, "updated": 5}
    assert column(products, "price", "category = 'a'") == [pytest.approx(9.0)] * 5
    assert column(products, "price", "category = 'b'") == [10.0] * 5


def test_operators_and_plain_values_combine(products):
    update = {"$inc": {"stock": 100}, "$set": {"note": "sale"}, "category": "c"}
    out = run_node("ProductBulkUpdateNode", {"filter": {"category": "b"}, "update": update})
    assert out["updated"] == 5
    assert column(products, "stock", "category = 'c'") == [100, 102, 104, 106, 108]
    assert set(column(products, "note", "category = 'c'")) == {"sale"}
    out = run_node("ProductBulkUpdateNode", {"filter": {}, "update": {"$unset": ["note"]}})
    assert out["updated"] == 10
    assert set(column(products, "note")) == {None}


def test_an_update_stamps_updated_at(products):
    before = column(products, "updated_at")
    run_node("ProductBulkUpdateNode", {"filter": {"name": "p1"}, "update": {"stock": 7}})
    after = column(products, "updated_at")
    assert after[1] != before[1] and after[0] == before[0]


def updates_run(db) -> list[str]:
    """Collects the UPDATE statements run on the products table while the list is alive."""
    seen: list[str] = []

    def listen(conn, cursor, statement, *_: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE PRODUCTS"):
            seen.append(statement)

    sa.event.listen(db.database.engine, "before_cursor_execute", listen)
    return seen


def test_limit_processes_every_matching_row_in_batches_of_that_many(products):
    statements = updates_run(products)
    params = {"filter": {"category": "a"}, "update": {"price": {"$multiply": 0.5}}, "limit": 2}
    out = run_node("ProductBulkUpdateNode", params)
    assert out == {"processed": 5, "updated": 5}
    # Each matching row halved once, though it still matches after its batch.
    assert column(products, "price", "category = 'a'") == [5.0] * 5
    assert column(products, "price", "category = 'b'") == [10.0] * 5
    assert len(statements) == 3  # 2 + 2 + 1 rows


def test_max_rows_stops_after_that_many_rows_lowest_ids_first(products):
    params = {"filter": {}, "update": {"price": 1.0}, "limit": 2, "max_rows": 3}
    out = run_node("ProductBulkUpdateNode", params)
    assert out == {"processed": 3, "updated": 3}
    assert column(products, "price") == [1.0] * 3 + [10.0] * 7
    out = run_node("ProductBulkUpdateNode", {"filter": {}, "update": {"stock": 0}, "max_rows": 4})
    assert out["updated"] == 4 and column(products, "stock") == [0] * 4 + list(range(4, 10))


def test_a_batched_update_is_one_transaction_a_failing_batch_leaves_every_row_as_it_was(db):
    @db.model
    class Code:
        value: str
        __indexes__ = [{"name": "ux_codes_value", "fields": ["value"], "unique": True}]

    run_node("CodeBulkCreateNode", {"data": [{"value": f"c{i}"} for i in range(4)]})
    # The first batch takes the value; the second clashes with it.
    with pytest.raises(NodeExecutionError) as caught:
        run_node("CodeBulkUpdateNode", {"filter": {}, "update": {"value": "same"}, "limit": 1})
    assert isinstance(caught.value.cause, IntegrityError)
    values = run_node("CodeListNode", {"sort": ["id"]})["records"]
    assert [r["value"] for r in values] == ["c0", "c1", "c2", "c3"]


def test_batched_updates_of_an_audited_versioned_model_record_each_row_once(db):
    @db.model
    class Tag:
        label: str
        __dataflow__ = {"versioned": True, "audit_log": True}

    run_node("TagBulkCreateNode", {"data": [{"label": f"t{i}"} for i in range(7)]})
    params = {"filter": {}, "update": {"label": "x"}, "limit": 3}
    assert run_node("TagBulkUpdateNode", params)["updated"] == 7
    tags = run_node("TagListNode")["records"]
    assert [(t["label"], t["version"]) for t in tags] == [("x", 2)] * 7
    updates = run_node("TagAuditNode", {"action_type": "update"})["records"]
    assert sorted(int(u["record_id"]) for u in updates) == sorted(t["id"] for t in tags)


def test_a_record_list_update_applies_every_row(db):
    @db.model
    class Reading:
        value: float
        label: str = ""

    run_node("ReadingBulkCreateNode", {"data": [{"value": 0.0} for _ in range(10_000)]})
    data = [{"id": i, "value": i * 1.5, "label": f"r{i}"} for i in range(1, 10_001)]
    out = run_node("ReadingBulkUpdateNode", {"data": data})
    assert out == {"processed": 10_000, "updated": 10_000}
    with db.database.engine.connect() as conn:
        changed = conn.execute(
            sa.text("SELECT COUNT(*) FROM readings WHERE value = id * 1.5 AND label <> ''")
        ).scalar_one()
    assert changed == 10_000


def test_record_list_rows_update_only_their_own_fields(products):
    data = [{"id": 1, "price": 1.0}, {"id": 2, "name": "two"}, {"id": 999, "price": 5.0}]
    out = run_node("ProductBulkUpdateNode", {"data": data})
    assert out == {"processed": 3, "updated": 2}
    assert column(products, "price")[:2] == [1.0, 10.0]
    assert column(products, "name")[:2] == ["p0", "two"]


def test_a_bad_record_list_row_rolls_back_and_is_named(products):
    data = [{"id": 1, "price": 1.0}, {"id": 2, "price": "free"}]
    error = refused("ProductBulkUpdateNode", {"data": data})
    assert (error.row, error.field) == (1, "price")
    assert column(products, "price")[0] == 10.0
    error = refused("ProductBulkUpdateNode", {"data": [{"price": 1.0}]})
    assert "missing required field(s) id" in str(error)
    error = refused("ProductBulkUpdateNode", {"data": [{"id": 1}]})
    assert "nothing to change besides id" in str(error)


def test_record_list_updates_not_atomic_report_failures(products):
    data = [{"id": 1, "price": 2.0}, {"id": 2, "price": "x"}, {"id": 3, "price": 3.0}]
    out = run_node("ProductBulkUpdateNode", {"data": data, "atomic": False})
    assert (out["processed"], out["updated"]) == (3, 2)
    assert [f["row"] for f in out["failed"]] == [1]
    assert column(products, "price")[:3] == [2.0, 10.0, 3.0]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"filter": {}, "update": {"name": {"$multiply": 2}}}, "'$multiply' on a number field"),
        ({"filter": {}, "update": {"stock": {"$inc": "1"}}}, "'$inc' on 'stock' to be given"),
        ({"filter": {}, "update": {"stock": {"$multiply": 0.5}}}, "an int, got float"),
        ({"filter": {}, "update": {"$push": {"stock": 1}}}, "update operators from"),
        ({"filter": {}, "update": {"$unset": ["name"]}}, "'name' is not Optional"),
        ({"filter": {}, "update": {"id": 5}}, "'id' is not one"),
        ({"filter": {}, "update": {"stock": 1, "$inc": {"stock": 1}}}, "changed twice"),
        ({"update": {"stock": 1}}, "missing 'filter'"),
        ({"filter": {}, "data": [{"id": 1, "stock": 1}]}, "'filter' goes with"),
        ({"data": [{"id": 1, "stock": 1}], "max_rows": 1}, "'max_rows' goes with"),
        ({"filter": {}, "update": {"stock": 1}, "limit": 0}, "'limit' expects a positive int"),
        (
            {"filter": {}, "update": {"stock": 1}, "limit": 5, "batch_size": 10},
            "'limit' and 'batch_size' both set how many rows",
        ),
    ],
)
def test_bad_updates_are_refused(products, params, message):
    assert message in str(refused("ProductBulkUpdateNode", params))
    assert column(products, "stock") == list(range(10))


def test_delete_by_filter_counts_what_it_deleted(products):
    out = run_node("ProductBulkDeleteNode", {"filter": {"category": "a"}})
    assert out == {"processed": 5, "deleted": 5, "soft": False}
    assert count_rows(products, "products") == 5


def test_an_empty_filter_deletes_everything_only_when_confirmed(products):
    error = refused("ProductBulkDeleteNode", {"filter": {}})
    assert "confirm_all=True" in str(error) and error.param == "filter"
    assert count_rows(products, "products") == 10
    out = run_node("ProductBulkDeleteNode", {"filter": {}, "confirm_all": True})
    assert out["deleted"] == 10
    assert count_rows(products, "products") == 0


def test_confirmation_can_be_turned_off_explicitly(products):
    out = run_node("ProductBulkDeleteNode", {"confirmation_required": False})
    assert out["deleted"] == 10


def test_soft_delete_needs_the_models_soft_delete_option(products):
    error = refused("ProductBulkDeleteNode", {"filter": {"category": "a"}, "soft_delete": True})
    assert "has no soft delete" in str(error)
    assert count_rows(products, "products") == 10
