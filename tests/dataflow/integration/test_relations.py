"""Relations: the naming convention, explicit declarations, foreign keys, relation filters."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from dataflow import DataFlow, IntegrityError, InvalidFilterError, MigrationError
from dataflow.errors import ModelDefinitionError
from kailash import NodeExecutionError, WorkflowBuilder
from tests.dataflow.conftest import run_node


def foreign_keys(db: DataFlow, table: str) -> list[tuple[list[str], str]]:
    with db.database.engine.connect() as conn:
        keys = sa.inspect(conn).get_foreign_keys(table)
    return [(k["constrained_columns"], k["referred_table"]) for k in keys]


def order_model(db: DataFlow) -> None:
    @db.model
    class Order:
        customer_id: int | None = None
        total: float = 0.0


def customer_model(db: DataFlow) -> None:
    @db.model
    class Customer:
        email: str
        region_id: int | None = None


def test_a_field_named_after_a_model_is_a_relation_and_a_foreign_key(db):
    order_model(db)  # defined before the model it points at
    customer_model(db)
    db.create_tables()
    assert foreign_keys(db, "orders") == [(["customer_id"], "customers")]
    assert foreign_keys(db, "customers") == []  # no Region model
    with pytest.raises(NodeExecutionError) as info:
        run_node("OrderCreateNode", {"customer_id": 999})
    assert isinstance(info.value.cause, IntegrityError)


def test_relation_filters_follow_every_hop_and_negate_plainly(db):
    @db.model
    class Region:
        name: str

    customer_model(db)
    order_model(db)
    north = run_node("RegionCreateNode", {"name": "north"})["id"]
    south = run_node("RegionCreateNode", {"name": "south"})["id"]
    ann = run_node("CustomerCreateNode", {"email": "ann@big.com", "region_id": north})["id"]
    bob = run_node("CustomerCreateNode", {"email": "bob@small.com", "region_id": south})["id"]
    ids = [
        run_node("OrderCreateNode", {"customer_id": c, "total": t})["id"]
        for c, t in [(ann, 10.0), (bob, 20.0), (None, 30.0), (ann, 40.0)]
    ]

    def found(where: dict) -> list[int]:
        return [r["id"] for r in run_node("OrderListNode", {"filter": where})["records"]]

    assert found({"customer": {"email": {"$regex": "@big\\.com$"}}}) == [ids[0], ids[3]]
    assert found({"customer": {"region": {"name": "south"}}}) == [ids[1]]
    assert found({"customer": {}}) == [ids[0], ids[1], ids[3]]  # has a customer
    # An order without a customer does not match, so it matches the negation.
    assert found({"$not": {"customer": {"email": "ann@big.com"}}}) == [ids[1], ids[2]]
    assert found({"customer": {"$not": {"email": "ann@big.com"}}}) == [ids[1]]
    deleted = run_node(
        "OrderBulkDeleteNode", {"filter": {"customer": {"region": {"name": "north"}}}}
    )
    assert deleted["deleted"] == 2
    assert found({}) == [ids[1], ids[2]]


def test_relations_can_be_declared_or_switched_off(db):
    customer_model(db)

    @db.model
    class Invoice:
        bought_by: int
        customer_id: int | None = None  # an id in another system
        __relations__ = {"buyer": {"model": "Customer", "field": "bought_by"}, "customer": None}

    @db.model
    class Refund:
        payer_id: int
        __relations__ = {"payer": "Customer"}

    db.create_tables()
    assert foreign_keys(db, "invoices") == [(["bought_by"], "customers")]
    assert foreign_keys(db, "refunds") == [(["payer_id"], "customers")]
    ann = run_node("CustomerCreateNode", {"email": "ann@x"})["id"]
    run_node("InvoiceCreateNode", {"bought_by": ann, "customer_id": 123456})
    found = run_node("InvoiceListNode", {"filter": {"buyer": {"email": "ann@x"}}})
    assert found["count"] == 1
    builder = WorkflowBuilder()
    with pytest.raises(InvalidFilterError, match="filter.customer: unknown field 'customer'"):
        builder.add_node("InvoiceListNode", "q", {"filter": {"customer": {"email": "ann@x"}}})
        builder.build()


@pytest.mark.parametrize(
    ("relations", "message"),
    [
        ({"buyer": "Customer"}, "no field 'buyer_id' holds the relation's key"),
        ({"total": "Customer"}, "'total' is already a field"),
        ({"buyer": {"model": "Customer", "on": "x"}}, "unknown key(s) on; known: model, field"),
        ({"buyer": {"model": "Customer", "field": "total"}}, "must be an int or str field"),
        ({"buyer": 5}, "expected a model name"),
    ],
)
def test_a_bad_relation_declaration_is_refused(db, relations, message):
    with pytest.raises(ModelDefinitionError, match=message.replace("(", r"\(").replace(")", r"\)")):

        @db.model
        class Sale:
            total: float
            __relations__ = relations


def test_a_declared_relation_whose_key_types_differ_is_refused(db):
    customer_model(db)
    with pytest.raises(ModelDefinitionError, match="'ref' is a str but Customer's primary key"):

        @db.model
        class Note:
            ref: str
            __relations__ = {"owner": {"model": "Customer", "field": "ref"}}


def test_a_relation_to_a_model_that_does_not_exist_is_explained(db):
    order_model(db)
    builder = WorkflowBuilder()
    with pytest.raises(InvalidFilterError) as info:
        builder.add_node("OrderListNode", "q", {"filter": {"customer": {"email": "a"}}})
        builder.build()
    assert "filter.customer: 'customer' would be a relation through customer_id, but this " in str(
        info.value
    )
    assert "has no model 'Customer'" in str(info.value)


def test_a_relation_filter_names_paths_inside_the_related_model(db):
    order_model(db)
    customer_model(db)
    builder = WorkflowBuilder()
    with pytest.raises(InvalidFilterError) as info:
        builder.add_node("OrderListNode", "q", {"filter": {"customer": {"email": {"$regx": "a"}}}})
        builder.build()
    assert "filter.customer.email.$regx: unknown operator; did you mean $regex?" in str(info.value)
    with pytest.raises(InvalidFilterError, match="its value is a filter on Customer"):
        again = WorkflowBuilder()
        again.add_node("OrderListNode", "r", {"filter": {"customer": 5}})
        again.build()


def test_an_existing_table_gains_the_foreign_key_when_its_target_appears(url):
    first = DataFlow(url)
    order_model(first)
    first.create_tables()
    first.close()

    second = DataFlow(url)
    order_model(second)
    customer_model(second)
    assert "added foreign key fk_orders_customer_id" in second.create_tables()
    assert foreign_keys(second, "orders") == [(["customer_id"], "customers")]
    second.close()

    third = DataFlow(url)  # the same models again: nothing to do
    customer_model(third)
    order_model(third)
    assert third.create_tables() == []
    third.close()


def test_a_foreign_key_is_not_added_over_rows_that_point_nowhere(url):
    first = DataFlow(url)
    order_model(first)
    run_node("OrderCreateNode", {"customer_id": 7})
    first.close()

    second = DataFlow(url)
    order_model(second)
    customer_model(second)
    with pytest.raises(MigrationError, match="some rows point at no customers row"):
        second.create_tables()
    assert foreign_keys(second, "orders") == []
    with second.database.engine.connect() as conn:  # the table and its row are untouched
        assert conn.execute(sa.text("SELECT customer_id FROM orders")).all() == [(7,)]
    second.close()


def tenant_models(db: DataFlow) -> None:
    @db.model
    class Customer:
        email: str
        __dataflow__ = {"multi_tenant": True}

    @db.model
    class Order:
        customer_id: int
        __dataflow__ = {"multi_tenant": True}


def test_a_key_between_tenant_models_includes_the_tenant_and_replaces_a_plain_one(url):
    db = DataFlow(url)
    tenant_models(db)
    # A schema with the plain key (customer_id -> customers.id) earlier versions made.
    old = sa.MetaData()
    for spec in (db.get_model("Customer"), db.get_model("Order")):
        sa.Table(spec.table_name, old, *(c._copy() for c in spec.t.columns))
    old.tables["orders"].append_constraint(
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name="fk_orders_customer_id")
    )
    with db.database.engine.begin() as conn:
        old.create_all(conn)
        conn.execute(
            old.tables["customers"].insert(), _stamped({"email": "a@x", "tenant_id": "t1"})
        )
        conn.execute(old.tables["orders"].insert(), _stamped({"customer_id": 1, "tenant_id": "t1"}))
    assert "replaced foreign key fk_orders_customer_id" in db.create_tables()
    keys = foreign_keys(db, "orders")
    assert len(keys) == 1 and sorted(keys[0][0]) == ["customer_id", "tenant_id"]
    assert run_node("OrderCountNode", {"tenant_id": "t1"})["count"] == 1  # rows kept
    with pytest.raises(NodeExecutionError) as info:
        run_node("OrderCreateNode", {"customer_id": 1, "tenant_id": "t2"})
    assert isinstance(info.value.cause, IntegrityError)
    db.close()


def _stamped(row: dict) -> dict:
    now = dt.datetime(2026, 1, 1)
    return {**row, "created_at": now, "updated_at": now}
