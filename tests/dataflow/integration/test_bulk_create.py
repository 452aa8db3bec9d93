"""BulkCreate and BulkUpsert on every backend: true counts, conflicts, atomicity, streaming."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Optional

import pytest
import sqlalchemy as sa

from dataflow import IntegrityError, ValidationError
from kailash import WorkflowBuilder
from tests.dataflow.conftest import count_rows, failure, run_node

pytestmark = pytest.mark.app_role


@pytest.fixture
def items(db):
    @db.model
    class Item:
        sku: str
        name: str
        price: float
        stock: int = 0
        __indexes__ = [{"name": "ux_items_sku", "fields": ["sku"], "unique": True}]

    return db


def rows(n: int, start: int = 0, **extra) -> list[dict]:
    return [
        {"sku": f"sku-{i}", "name": f"item {i}", "price": float(i), **extra}
        for i in range(start, start + n)
    ]


def stored(db, column: str = "name") -> dict[str, object]:
    """sku -> column, read with plain SQL."""
    with db.database.engine.connect() as conn:
        result = conn.execute(sa.text(f"SELECT sku, {column} FROM items"))
        return dict(result.all())


def test_every_row_is_inserted_in_batches_and_ids_come_back_in_order(items):
    out = run_node("ItemBulkCreateNode", {"data": rows(25), "batch_size": 10, "return_ids": True})
    assert out["processed"] == out["inserted"] == 25
    assert (out["updated"], out["skipped"], out["batches"]) == (0, 0, 3)
    assert count_rows(items, "items") == 25
    for i in (0, 12, 24):
        assert run_node("ItemReadNode", {"id": out["ids"][i]})["sku"] == f"sku-{i}"


def test_rows_take_defaults_and_timestamps_like_single_creates(items):
    run_node("ItemBulkCreateNode", {"data": rows(2)})
    record = run_node("ItemListNode", {"limit": 1})["records"][0]
    assert record["stock"] == 0
    assert record["created_at"] == record["updated_at"] is not None


def test_a_generator_is_streamed_batch_by_batch(items):
    pulled = 0
    seen: list[tuple[int, int | None, int]] = []

    def source():
        nonlocal pulled
        for row in rows(25_000):
            pulled += 1
            yield row

    out = run_node(
        "ItemBulkCreateNode",
        {
            "data": source(),
            "batch_size": 1000,
            "progress": lambda done, total: seen.append((done, total, pulled)),
        },
    )
    assert out["processed"] == out["inserted"] == 25_000
    assert out["batches"] == 25
    assert [(done, total) for done, total, _ in seen] == [
        (n, None) for n in range(1000, 25_001, 1000)
    ]
    # Rows are pulled as they are written (PostgreSQL COPYs up to 10,000 at a time).
    assert max(pulled_then - done for done, _, pulled_then in seen) <= 10_000
    assert count_rows(items, "items") == 25_000


def test_progress_true_draws_a_bar(items, capsys):
    run_node("ItemBulkCreateNode", {"data": rows(30), "batch_size": 10, "progress": True})
    assert "30/30" in capsys.readouterr().err


def test_a_bad_value_rolls_back_everything_and_names_row_and_field(items):
    data = rows(3000)
    data[2501]["price"] = "cheap"
    error = failure("ItemBulkCreateNode", {"data": data, "batch_size": 500})
    assert isinstance(error, ValidationError)
    assert (error.row, error.field, error.param) == (2501, "price", "data")
    assert "row 2501: field 'price' expects a float, got str" in str(error)
    assert count_rows(items, "items") == 0


def test_a_row_the_database_refuses_rolls_back_everything_and_is_named(items):
    data = rows(2000)
    data[1500]["sku"] = "sku-3"
    error = failure("ItemBulkCreateNode", {"data": data})
    assert isinstance(error, IntegrityError)
    assert error.row == 1500
    assert "row 1500" in str(error) and "sku-3" not in str(error)
    assert count_rows(items, "items") == 0


def test_not_atomic_writes_good_rows_and_reports_the_bad_ones(items):
    data = rows(1200)
    data[5]["price"] = "x"
    data[1100]["sku"] = "sku-7"
    out = run_node("ItemBulkCreateNode", {"data": data, "atomic": False, "batch_size": 500})
    assert out["processed"] == 1200 and out["inserted"] == 1198
    assert [(f["row"], f["field"]) for f in out["failed"]] == [(5, "price"), (1100, None)]
    assert "expects a float" in out["failed"][0]["error"]
    assert "refused" in out["failed"][1]["error"]
    assert count_rows(items, "items") == 1198


def test_a_bulk_write_joins_an_enclosing_transaction(items):
    with pytest.raises(RuntimeError), items.transaction():
        out = run_node("ItemBulkCreateNode", {"data": rows(30), "batch_size": 10})
        assert out["inserted"] == 30
        out = run_node("ItemBulkUpsertNode", {"data": rows(5, start=28)})
        assert (out["inserted"], out["updated"]) == (3, 2)
        raise RuntimeError("the block fails")
    assert count_rows(items, "items") == 0


def test_bad_rows_are_refused_with_their_index(items):
    cases = [
        ({"sku": "a", "name": "a", "price": 1.0, "colour": "red"}, "unknown field 'colour'"),
        ({"sku": "a", "price": 1.0}, "missing required field(s) name"),
        (["a", "b"], "is a list"),
    ]
    for bad, message in cases:
        error = failure("ItemBulkCreateNode", {"data": [*rows(2), bad]})
        assert isinstance(error, ValidationError)
        assert error.row == 2 and message in str(error)
    assert count_rows(items, "items") == 0


def test_data_that_is_not_rows_is_refused_when_the_workflow_is_built(items):
    builder = WorkflowBuilder()
    builder.add_node("ItemBulkCreateNode", "b", {"data": "${rows}"})
    with pytest.raises(ValidationError, match="iterable of row dicts, got str; templates"):
        builder.build()


def test_conflict_error_is_the_default_and_stores_nothing(items):
    run_node("ItemBulkCreateNode", {"data": rows(3)})
    error = failure("ItemBulkCreateNode", {"data": rows(5)})
    assert isinstance(error, IntegrityError) and error.row == 0
    assert count_rows(items, "items") == 3


def test_conflict_skip_keeps_existing_rows_and_counts_them(items):
    run_node("ItemBulkCreateNode", {"data": rows(3)})
    out = run_node(
        "ItemBulkCreateNode",
        {"data": rows(5, name="new"), "conflict_resolution": "skip", "return_ids": True},
    )
    assert (out["inserted"], out["skipped"], out["updated"]) == (2, 3, 0)
    assert out["ids"][:3] == [None, None, None]
    assert [run_node("ItemReadNode", {"id": i})["sku"] for i in out["ids"][3:]] == [
        "sku-3",
        "sku-4",
    ]
    assert count_rows(items, "items") == 5
    assert stored(items)["sku-0"] == "item 0"


def test_conflict_upsert_updates_existing_rows_and_counts_them(items):
    first = run_node("ItemBulkCreateNode", {"data": rows(3), "return_ids": True})
    out = run_node(
        "ItemBulkCreateNode",
        {
            "data": rows(5, name="new"),
            "conflict_resolution": "upsert",
            "conflict_on": ["sku"],
            "return_ids": True,
        },
    )
    assert (out["inserted"], out["updated"], out["skipped"]) == (2, 3, 0)
    assert out["ids"][:3] == first["ids"]
    assert set(stored(items).values()) == {"new"}
    assert count_rows(items, "items") == 5


def test_rows_without_their_key_are_new_rows(items):
    run_node("ItemBulkCreateNode", {"data": rows(2)})
    data = [{"id": 1, **rows(1, name="new")[0]}, *rows(2, start=5)]
    out = run_node(
        "ItemBulkCreateNode",
        {"data": data, "conflict_resolution": "upsert", "conflict_on": ["id"], "return_ids": True},
    )
    assert (out["inserted"], out["updated"]) == (2, 1)
    assert out["ids"][0] == 1
    assert [run_node("ItemReadNode", {"id": i})["sku"] for i in out["ids"][1:]] == [
        "sku-5",
        "sku-6",
    ]
    assert count_rows(items, "items") == 4


def test_bulk_upsert_counts_inserts_and_updates(items):
    run_node("ItemBulkCreateNode", {"data": rows(4)})
    out = run_node("ItemBulkUpsertNode", {"data": rows(6, start=2, name="new")})
    assert out == {"processed": 6, "inserted": 4, "updated": 2}
    names = stored(items)
    assert count_rows(items, "items") == 8
    assert (names["sku-1"], names["sku-2"], names["sku-7"]) == ("item 1", "new", "new")


def test_an_upsert_changes_only_the_fields_a_row_carries_and_update_fields(items):
    run_node("ItemBulkCreateNode", {"data": rows(2, stock=5)})
    out = run_node(
        "ItemBulkUpsertNode",
        {
            "data": [{"sku": "sku-0", "name": "renamed", "price": 9.0}],
            "update_fields": ["price"],
        },
    )
    assert out["updated"] == 1
    assert stored(items, "price")["sku-0"] == 9.0
    assert stored(items)["sku-0"] == "item 0"
    assert stored(items, "stock")["sku-0"] == 5


def test_a_key_repeated_in_one_batch_applies_in_order(items):
    data = [*rows(1), *rows(1, name="second"), *rows(1, name="third")]
    out = run_node("ItemBulkUpsertNode", {"data": data, "conflict_on": ["sku"]})
    assert (out["inserted"], out["updated"]) == (1, 2)
    assert stored(items) == {"sku-0": "third"}


def test_an_upsert_on_one_unique_key_never_overwrites_a_row_holding_another(db):
    @db.model
    class Member:
        handle: str
        email: str
        __indexes__ = [
            {"name": "ux_members_handle", "fields": ["handle"], "unique": True},
            {"name": "ux_members_email", "fields": ["email"], "unique": True},
        ]

    run_node("MemberBulkCreateNode", {"data": [{"handle": "ann", "email": "a@x"}]})
    # A new handle whose email is taken: MySQL's ON DUPLICATE KEY UPDATE would update ann.
    data = [{"handle": "bob", "email": "a@x"}]
    error = failure("MemberBulkUpsertNode", {"data": data, "conflict_on": ["handle"]})
    assert isinstance(error, IntegrityError)
    assert run_node("MemberListNode", {})["records"][0]["handle"] == "ann"


def test_conflict_on_must_name_a_unique_key(items):
    builder = WorkflowBuilder()
    builder.add_node("ItemBulkUpsertNode", "u", {"data": rows(1), "conflict_on": ["name"]})
    with pytest.raises(ValidationError, match="a unique key of Item"):
        builder.build()


def test_conflict_on_without_skip_or_upsert_is_refused(items):
    error = failure("ItemBulkCreateNode", {"data": rows(1), "conflict_on": ["sku"]})
    assert isinstance(error, ValidationError) and error.param == "conflict_on"


def test_an_empty_update_fields_is_refused(items):
    builder = WorkflowBuilder()
    builder.add_node("ItemBulkUpsertNode", "u", {"data": rows(1), "update_fields": []})
    with pytest.raises(ValidationError, match="conflict_resolution 'skip'"):
        builder.build()


@pytest.mark.sqlite_only
def test_any_batch_size_stays_within_sqlite_limits(items):
    data = rows(40_000)
    out = run_node("ItemBulkCreateNode", {"data": data, "batch_size": 40_000})
    assert out["inserted"] == 40_000
    upserted = run_node("ItemBulkUpsertNode", {"data": data, "batch_size": 40_000})
    assert upserted["updated"] == 40_000
    changed = [{"id": i, "price": 1.0} for i in range(1, 40_001)]
    updated = run_node("ItemBulkUpdateNode", {"data": changed, "batch_size": 40_000})
    assert updated["updated"] == 40_000


def test_every_field_type_is_stored_as_a_single_create_stores_it(db):
    @db.model
    class Sample:
        code: str
        when: dt.datetime
        day: dt.date
        amount: Decimal
        ratio: float
        count: int
        flag: bool
        meta: dict
        tags: list
        note: Optional[str] = None
        __indexes__ = [{"name": "ux_samples_code", "fields": ["code"], "unique": True}]

    values = {
        "when": dt.datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC),
        "day": dt.date(2025, 1, 2),
        "amount": Decimal("12.5"),
        "ratio": 0.25,
        "count": 7,
        "flag": True,
        "meta": {"a": [1, 2], "b": None},
        "tags": ["x", "y"],
    }
    single = run_node("SampleCreateNode", {"code": "single", **values})
    run_node("SampleBulkCreateNode", {"data": [{"code": "bulk", **values}]})
    run_node("SampleBulkUpsertNode", {"data": [{"code": "upsert", **values}]})
    stored_rows = run_node("SampleListNode", {})["records"]
    expected = {
        k: v for k, v in single.items() if k not in ("id", "code", "created_at", "updated_at")
    }
    for record in stored_rows:
        assert {k: record[k] for k in expected} == expected
    changed = {**values, "ratio": 0.5, "when": "2026-03-04T05:06:07+02:00", "note": "n"}
    out = run_node("SampleBulkUpsertNode", {"data": [{"code": "bulk", **changed}]})
    assert out["updated"] == 1
    record = next(r for r in run_node("SampleListNode", {})["records"] if r["code"] == "bulk")
    assert (record["ratio"], record["note"]) == (0.5, "n")
    assert record["when"] == dt.datetime(2026, 3, 4, 3, 6, 7, tzinfo=dt.UTC)


def test_an_upsert_on_a_key_of_two_fields(db):
    @db.model
    class Stock:
        shop: str
        sku: str
        quantity: int
        __indexes__ = [{"name": "ux_stocks_shop_sku", "fields": ["shop", "sku"], "unique": True}]

    first = [{"shop": s, "sku": k, "quantity": 1} for s in ("a", "b") for k in ("x", "y")]
    run_node("StockBulkCreateNode", {"data": first})
    again = [{"shop": "a", "sku": "x", "quantity": 5}, {"shop": "c", "sku": "x", "quantity": 9}]
    out = run_node("StockBulkUpsertNode", {"data": again, "conflict_on": ["shop", "sku"]})
    assert (out["inserted"], out["updated"]) == (1, 1)
    skipped = run_node(
        "StockBulkCreateNode",
        {"data": again, "conflict_resolution": "skip", "return_ids": True},
    )
    assert (skipped["inserted"], skipped["skipped"], skipped["ids"]) == (0, 2, [None, None])
    quantities = {
        (r["shop"], r["sku"]): r["quantity"] for r in run_node("StockListNode", {})["records"]
    }
    assert quantities == {("a", "x"): 5, ("a", "y"): 1, ("b", "x"): 1, ("b", "y"): 1, ("c", "x"): 9}


def test_bulk_writes_of_an_audited_tenant_model_store_every_row_and_name_a_refused_one(db):
    @db.model
    class Member:
        email: str
        name: str
        __dataflow__ = {"multi_tenant": True, "audit_log": True}
        __indexes__ = [{"name": "ux_members_email", "fields": ["email"], "unique": True}]

    people = [{"email": f"m{i}@x", "name": f"m {i}"} for i in range(60)]
    for tenant in ("t1", "t2"):  # a unique key is per tenant
        out = run_node(
            "MemberBulkCreateNode", {"data": people, "return_ids": True, "tenant_id": tenant}
        )
        assert out["inserted"] == 60 and None not in out["ids"]
    changed = [{**p, "name": "new"} for p in people[30:]] + [{"email": "z@x", "name": "z"}]
    out = run_node(
        "MemberBulkUpsertNode", {"data": changed, "conflict_on": ["email"], "tenant_id": "t1"}
    )
    assert (out["inserted"], out["updated"]) == (1, 30)
    twice = [{"email": f"n{i}@x", "name": "n"} for i in range(20)] + [people[0]]
    error = failure("MemberBulkCreateNode", {"data": twice, "tenant_id": "t1"})
    assert isinstance(error, IntegrityError) and error.row == 20
    assert count_rows(db, "members") == 121
    # One audit row per created row and per updated row, none of the refused call.
    assert count_rows(db, "dataflow_audit_log") == 60 + 60 + 1 + 30
    t1 = run_node("MemberListNode", {"tenant_id": "t1", "filter": {"name": "new"}})
    assert t1["count"] == 30
