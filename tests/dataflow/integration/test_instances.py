"""Several DataFlow instances in one process: each owns its node types, none is rebound."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from dataflow import ConfigurationError, DataFlow, ModelDefinitionError, ValidationError
from kailash import LocalRuntime, WorkflowBuilder
from kailash.errors import WorkflowValidationError
from kailash.nodes.base import Node
from tests.conftest import fresh_database
from tests.dataflow.conftest import count_rows, run_node

PAIRS = {"sqlite+sqlite": ("sqlite", "sqlite"), "sqlite+postgresql": ("sqlite", "postgresql")}


def define_user(db: DataFlow) -> None:
    @db.model
    class User:
        name: str
        email: str
        active: bool = True
        __indexes__ = [{"name": "ux_users_email", "fields": ["email"], "unique": True}]


@pytest.fixture(params=list(PAIRS))
def pair(request, tmp_path, admin_engines) -> Iterator[tuple[DataFlow, DataFlow]]:
    first, second = PAIRS[request.param]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        fresh_database(first, admin_engines, tmp_path / "a") as url_a,
        fresh_database(second, admin_engines, tmp_path / "b") as url_b,
    ):
        a = DataFlow(url_a, name="a")
        b = DataFlow(url_b, name="b")
        define_user(a)
        define_user(b)
        yield a, b
        a.close()
        b.close()


def emails(db: DataFlow) -> list[str]:
    db.create_tables()
    with db.database.engine.connect() as conn:
        return sorted(conn.execute(sa.text("SELECT email FROM users")).scalars())


def test_every_node_type_given_its_database_writes_only_to_it(pair):
    a, b = pair
    created = run_node("UserCreateNode", {"database": "a", "name": "Ann", "email": "ann@a"})
    run_node("UserCreateNode", {"database": "b", "name": "Bob", "email": "bob@b"})
    run_node("UserUpdateNode", {"database": "a", "id": created["id"], "name": "Anna"})
    run_node("UserUpsertNode", {"database": "a", "name": "Cy", "email": "cy@a"})
    run_node(
        "UserBulkCreateNode",
        {"database": "b", "data": [{"name": f"B{i}", "email": f"b{i}@b"} for i in range(3)]},
    )
    run_node(
        "UserBulkUpsertNode",
        {"database": "a", "data": [{"name": "Dee", "email": "dee@a"}], "conflict_on": ["email"]},
    )
    run_node(
        "UserBulkUpdateNode",
        {"database": "b", "filter": {"email": "b0@b"}, "update": {"active": False}},
    )
    run_node("UserBulkDeleteNode", {"database": "b", "filter": {"email": "b1@b"}})
    run_node("UserDeleteNode", {"database": "a", "id": created["id"]})

    assert emails(a) == ["cy@a", "dee@a"]
    assert emails(b) == ["b0@b", "b2@b", "bob@b"]
    listed = run_node("UserListNode", {"database": "b", "filter": {"active": False}})
    assert [r["email"] for r in listed["records"]] == ["b0@b"]
    assert run_node("UserCountNode", {"database": "a"})["count"] == 2
    read = run_node("UserReadNode", {"database": "b", "id": listed["records"][0]["id"]})
    assert read["email"] == "b0@b"
    totals = run_node(
        "UserAggregateNode",
        {"database": "b", "group_by": ["active"], "aggregate": {"n": {"$count": "*"}}},
    )
    assert sorted((r["active"], r["n"]) for r in totals["records"]) == [(False, 1), (True, 2)]


def test_a_node_type_two_instances_define_is_refused_without_its_database(pair):
    builder = WorkflowBuilder()
    builder.add_node("UserCreateNode", "create", {"name": "Ann", "email": "ann@x"})
    with pytest.raises(WorkflowValidationError) as info:
        builder.build()
    message = str(info.value)
    assert "'UserCreateNode' is defined by 'a', 'b'" in message
    assert "'database' parameter" in message
    a, b = pair
    assert count_rows(a, "users") == count_rows(b, "users") == 0


def test_a_database_that_does_not_define_the_node_type_is_named_in_the_refusal(pair):
    builder = WorkflowBuilder()
    builder.add_node("UserCreateNode", "create", {"database": "c", "name": "A", "email": "a"})
    with pytest.raises(
        WorkflowValidationError, match="not defined by 'c'; it is defined by 'a', 'b'"
    ):
        builder.build()


def test_one_workflow_mixes_the_nodes_of_both_instances(pair):
    a, b = pair
    builder = WorkflowBuilder()
    builder.add_node("UserCreateNode", "in_a", {"database": "a", "name": "Ann", "email": "ann"})
    builder.add_node("UserCreateNode", "copy_to_b", {"database": "b", "name": "Ann (copy)"})
    builder.add_connection("in_a", "email", "copy_to_b", "email")
    builder.add_node("UserCountNode", "count_b", {"database": "b"})
    builder.add_connection("copy_to_b", "id", "count_b", "input")
    results, _ = LocalRuntime().execute(builder.build())
    assert results["copy_to_b"]["email"] == "ann"
    assert results["count_b"] == {"count": 1}
    assert emails(a) == emails(b) == ["ann"]


def test_a_node_class_refuses_another_instances_name(pair):
    a, _ = pair
    builder = WorkflowBuilder()
    builder.add_node(a.nodes["UserCountNode"], "count", {"database": "b"})
    with pytest.raises(ValidationError, match="belongs to the DataFlow named .a."):
        builder.build()


def test_a_model_is_defined_once_per_instance(tmp_path):
    db = DataFlow(f"sqlite:///{tmp_path / 'one.db'}")
    define_user(db)
    with pytest.raises(ModelDefinitionError, match="User is already a model of this DataFlow"):
        define_user(db)
    assert list(db.models) == ["User"]
    db.close()


def test_custom_node_types_follow_the_same_rule(tmp_path):
    class Ping(Node):
        def run(self, **_: object) -> dict:
            return {"pong": True}

    one = DataFlow(f"sqlite:///{tmp_path / 'one.db'}", name="one")
    two = DataFlow(f"sqlite:///{tmp_path / 'two.db'}", name="two")
    one.register_node(type("Ping", (Ping,), {}), "Ping")
    with pytest.raises(ConfigurationError, match="'Ping' is already defined on this DataFlow"):
        one.register_node(type("Ping", (Ping,), {}), "Ping")
    two.register_node(type("Ping", (Ping,), {}), "Ping")
    with pytest.raises(WorkflowValidationError, match="'Ping' is defined by 'one', 'two'"):
        run_node("Ping")
    assert run_node("Ping", {"database": "two"}) == {"pong": True}
    one.close()
    two.close()


def test_a_closed_or_dropped_instance_gives_its_node_types_back(tmp_path):
    old = DataFlow(f"sqlite:///{tmp_path / 'old.db'}", name="old")
    define_user(old)
    new = DataFlow(f"sqlite:///{tmp_path / 'new.db'}", name="new")
    define_user(new)
    old.close()
    run_node("UserCreateNode", {"name": "Ann", "email": "ann"})
    assert emails(new) == ["ann"]

    newer = DataFlow(f"sqlite:///{tmp_path / 'newer.db'}", name="newer")
    define_user(newer)
    del new
    gc.collect()
    run_node("UserCreateNode", {"name": "Bob", "email": "bob"})
    assert emails(newer) == ["bob"]
    newer.close()


def test_the_default_name_is_the_servers_host_or_the_files_stem(tmp_path):
    assert DataFlow(":memory:").name == "memory"
    assert DataFlow(f"sqlite:///{tmp_path / 'shop.db'}").name == "shop"
    assert DataFlow("postgresql://primary/db").name == "primary"
    with pytest.raises(ConfigurationError, match="name must be a non-empty string"):
        DataFlow(":memory:", name=" ")
