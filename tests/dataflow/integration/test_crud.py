"""The generated single-record and query nodes, on every backend."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from dataflow import NotFoundError
from kailash import LocalRuntime, NodeExecutionError, WorkflowBuilder
from tests.dataflow.conftest import count_rows, run_node


@pytest.fixture
def users(db):
    @db.model
    class User:
        name: str
        email: str
        active: bool = True

    return db


@pytest.fixture
def things(db):
    @db.model
    class Thing:
        label: str
        count: int = 0
        ratio: float = 0.5
        price: Decimal = Decimal("9.99")
        seen_at: dt.datetime | None = None
        born: dt.date | None = None
        meta: dict = {}
        tags: list = []
        note: str | None = None

    return db


def test_create_returns_every_column(users):
    record = run_node("UserCreateNode", {"name": "Alice", "email": "alice@example.com"})
    assert set(record) == {"id", "name", "email", "active", "created_at", "updated_at"}
    assert record["name"] == "Alice"
    assert record["active"] is True
    assert isinstance(record["id"], int)
    assert isinstance(record["created_at"], dt.datetime)
    assert record["created_at"].tzinfo is not None
    assert record["created_at"] == record["updated_at"]


def test_values_round_trip_with_their_python_types(things):
    seen = dt.datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=dt.UTC)
    created = run_node(
        "ThingCreateNode",
        {
            "label": "x",
            "count": 3,
            "ratio": 0.25,
            "price": Decimal("12.34"),
            "seen_at": seen,
            "born": dt.date(2000, 1, 2),
            "meta": {"a": [1, 2, {"b": None}]},
            "tags": ["red", "blue"],
        },
    )
    record = run_node("ThingReadNode", {"id": created["id"]})
    assert record == created
    assert record["count"] == 3 and type(record["count"]) is int
    assert record["ratio"] == 0.25
    assert record["price"] == Decimal("12.34") and isinstance(record["price"], Decimal)
    assert record["seen_at"] == seen
    assert record["born"] == dt.date(2000, 1, 2)
    assert record["meta"] == {"a": [1, 2, {"b": None}]}
    assert record["tags"] == ["red", "blue"]
    assert record["note"] is None


def test_integral_floats_come_back_as_floats(things):
    created = run_node("ThingCreateNode", {"label": "x", "ratio": 2})
    updated = run_node("ThingUpdateNode", {"id": created["id"], "ratio": 3.0})
    assert type(created["ratio"]) is float and created["ratio"] == 2.0
    assert type(updated["ratio"]) is float and updated["ratio"] == 3.0


def test_defaults_fill_what_is_not_given(things):
    record = run_node("ThingCreateNode", {"label": "x"})
    assert record["count"] == 0
    assert record["ratio"] == 0.5
    assert record["price"] == Decimal("9.99")
    assert record["meta"] == {} and record["tags"] == []
    assert record["seen_at"] is None


def test_naive_datetimes_are_taken_as_utc_and_iso_strings_are_parsed(things):
    naive = run_node("ThingCreateNode", {"label": "a", "seen_at": dt.datetime(2025, 1, 1, 12)})
    text = run_node("ThingCreateNode", {"label": "b", "seen_at": "2025-01-01T13:00:00+01:00"})
    expected = dt.datetime(2025, 1, 1, 12, tzinfo=dt.UTC)
    assert naive["seen_at"] == expected
    assert text["seen_at"] == expected


def test_read_by_id_and_missing_ids(users):
    created = run_node("UserCreateNode", {"name": "A", "email": "a@x"})
    assert run_node("UserReadNode", {"id": created["id"]}) == created
    with pytest.raises(NodeExecutionError) as info:
        run_node("UserReadNode", {"id": 999})
    assert isinstance(info.value.cause, NotFoundError)
    assert "no User with id 999" in str(info.value.cause)
    assert run_node("UserReadNode", {"id": 999, "raise_on_not_found": False}) == {}


def test_update_changes_fields_and_updated_at(users):
    created = run_node("UserCreateNode", {"name": "A", "email": "a@x"})
    updated = run_node("UserUpdateNode", {"id": created["id"], "name": "B", "active": False})
    assert updated["name"] == "B"
    assert updated["active"] is False
    assert updated["email"] == "a@x"
    assert updated["created_at"] == created["created_at"]
    assert updated["updated_at"] > created["updated_at"]
    assert run_node("UserReadNode", {"id": created["id"]}) == updated


def test_update_of_a_missing_row_is_not_found(users):
    with pytest.raises(NodeExecutionError) as info:
        run_node("UserUpdateNode", {"id": 42, "name": "B"})
    assert isinstance(info.value.cause, NotFoundError)


def test_delete_removes_the_row(users):
    created = run_node("UserCreateNode", {"name": "A", "email": "a@x"})
    assert run_node("UserDeleteNode", {"id": created["id"]}) == {
        "id": created["id"],
        "deleted": True,
        "soft": False,
    }
    assert count_rows(users, "users") == 0
    with pytest.raises(NodeExecutionError) as info:
        run_node("UserDeleteNode", {"id": created["id"]})
    assert isinstance(info.value.cause, NotFoundError)


def test_list_filters_sorts_and_pages(users):
    for i, name in enumerate(["c", "a", "b", "d"]):
        run_node("UserCreateNode", {"name": name, "email": f"{name}@x", "active": i != 3})
    out = run_node("UserListNode", {"filter": {"active": True}, "sort": ["name"]})
    assert [r["name"] for r in out["records"]] == ["a", "b", "c"]
    assert out["count"] == 3
    assert out["total"] is None
    page = run_node(
        "UserListNode",
        {"sort": [{"name": -1}], "limit": 2, "offset": 1, "count_total": True},
    )
    assert [r["name"] for r in page["records"]] == ["c", "b"]
    assert (page["count"], page["total"], page["limit"], page["offset"]) == (2, 4, 2, 1)
    desc = run_node("UserListNode", {"sort": [{"field": "name", "direction": "desc"}]})
    assert [r["name"] for r in desc["records"]] == ["d", "c", "b", "a"]
    dashed = run_node("UserListNode", {"sort": ["-name"], "fields": ["name"]})
    assert dashed["records"] == [{"name": n} for n in "dcba"]


def test_list_filters_on_null(things):
    run_node("ThingCreateNode", {"label": "with", "note": "n"})
    run_node("ThingCreateNode", {"label": "without"})
    out = run_node("ThingListNode", {"filter": {"note": None}})
    assert [r["label"] for r in out["records"]] == ["without"]


def test_count(users):
    for name in "abc":
        run_node("UserCreateNode", {"name": name, "email": f"{name}@x", "active": name != "c"})
    assert run_node("UserCountNode", {"filter": {"active": True}}) == {"count": 2}
    assert run_node("UserCountNode") == {"count": 3}


def test_upsert_inserts_then_updates_on_the_primary_key(users):
    first = run_node("UserUpsertNode", {"id": 7, "name": "A", "email": "a@x"})
    assert first["id"] == 7 and first["name"] == "A"
    second = run_node("UserUpsertNode", {"id": 7, "name": "B", "email": "a@x"})
    assert second["name"] == "B"
    assert second["created_at"] == first["created_at"]
    assert count_rows(users, "users") == 1


def test_upsert_on_a_declared_unique_key(db):
    @db.model
    class Account:
        email: str
        plan: str = "free"
        __indexes__ = [{"name": "ux_account_email", "fields": ["email"], "unique": True}]

    a = run_node("AccountUpsertNode", {"email": "a@x", "plan": "pro", "conflict_on": ["email"]})
    b = run_node("AccountUpsertNode", {"email": "a@x", "plan": "team"})
    assert a["id"] == b["id"]
    assert b["plan"] == "team"
    assert count_rows(db, "accounts") == 1


def test_connected_values_flow_between_nodes(users):
    builder = WorkflowBuilder()
    builder.add_node("UserCreateNode", "create", {"name": "A", "email": "a@x"})
    builder.add_node("UserUpdateNode", "rename", {"name": "Renamed"})
    builder.add_node("UserReadNode", "read")
    builder.add_connection("create", "id", "rename", "id")
    builder.add_connection("rename", "id", "read", "id")
    results, _ = LocalRuntime().execute(builder.build())
    assert results["read"]["name"] == "Renamed"


def test_a_field_may_be_called_like_an_output_key(db):
    @db.model
    class Doc:
        name: str
        result: str
        tags: list
        version: int = 1

    created = run_node("DocCreateNode", {"name": "n", "result": "r", "tags": ["t"], "version": 3})
    assert (created["result"], created["tags"], created["version"]) == ("r", ["t"], 3)
    updated = run_node("DocUpdateNode", {"id": created["id"], "version": 4})
    assert updated["version"] == 4


def test_string_primary_keys_are_supplied_by_the_user(db):
    @db.model
    class Country:
        id: str
        name: str

    run_node("CountryCreateNode", {"id": "nz", "name": "New Zealand"})
    assert run_node("CountryReadNode", {"id": "nz"})["name"] == "New Zealand"


def test_a_built_workflow_keeps_its_params_and_runs_again(things):
    meta = {"colour": "red"}
    builder = WorkflowBuilder()
    builder.add_node("ThingCreateNode", "create", {"label": "a", "meta": meta})
    workflow = builder.build()
    meta["colour"] = "blue"  # the caller's dict changes after build(): the workflow's does not
    runtime = LocalRuntime()
    first = runtime.execute(workflow)[0]["create"]
    first["meta"]["colour"] = "green"  # nor does a change to one run's output
    second = runtime.execute(workflow)[0]["create"]
    assert first["id"] != second["id"]
    assert second["meta"] == {"colour": "red"}
    assert count_rows(things, "things") == 2


def test_a_built_bulk_workflow_writes_its_rows_on_each_run(users):
    builder = WorkflowBuilder()
    rows = [{"name": f"u{i}", "email": f"u{i}@example.com"} for i in range(3)]
    builder.add_node("UserBulkCreateNode", "load", {"data": rows})
    workflow = builder.build()
    runtime = LocalRuntime()
    assert runtime.execute(workflow)[0]["load"]["inserted"] == 3
    assert runtime.execute(workflow)[0]["load"]["inserted"] == 3
    assert count_rows(users, "users") == 6
