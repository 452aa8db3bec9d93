"""Reading annotated classes into model specs."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import ClassVar, Optional

import pytest

from dataflow import DataFlow, ModelDefinitionError
from dataflow.features.options import model_spec
from dataflow.models.parse import table_name_for
from kailash.nodes import default_registry


@pytest.mark.parametrize(
    ("name", "table"),
    [
        ("User", "users"),
        ("OrderItem", "order_items"),
        ("Category", "categories"),
        ("Address", "addresses"),
        ("Box", "boxes"),
        ("Day", "days"),
        ("HTTPLog", "http_logs"),
    ],
)
def test_table_names_are_snake_case_plurals(name, table):
    assert table_name_for(name) == table


def test_fields_types_defaults_and_automatic_columns():
    class Thing:
        name: str
        count: int = 3
        price: Decimal | None = None
        when: dt.datetime
        tags: list[str] = []
        meta: dict[str, int] = {}
        registry: ClassVar[dict] = {}

    spec = model_spec(Thing)
    assert list(spec.fields) == [
        "id",
        "name",
        "count",
        "price",
        "when",
        "tags",
        "meta",
        "created_at",
        "updated_at",
    ]
    assert spec.fields["id"].primary_key and spec.fields["id"].autoincrement
    assert spec.required == ["name", "when"]
    assert spec.fields["price"].nullable
    assert spec.fields["count"].default == 3
    assert spec.fields["tags"].type.is_json
    assert spec.fields["created_at"].managed


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"__annotations__": {"x": set}}, "Thing.x: unsupported type"),
        ({"__annotations__": {"x": int | str}}, "a field holds one type"),
        ({"__annotations__": {"input": str}}, "'input' is a parameter of every node"),
        ({"__annotations__": {"_x": str}}, "may not start with '_'"),
        ({"__annotations__": {"x": int}, "x": "three"}, "Thing.x: default 'three' is not valid"),
        ({"__annotations__": {"x": int}, "x": None}, "default None needs Optional"),
        ({"__annotations__": {"created_at": str}}, "maintains 'created_at' as a datetime"),
        ({"__annotations__": {"id": Optional[int]}}, "primary key cannot be Optional"),
        ({"__annotations__": {"x": int}, "__tablename__": "bad name"}, "plain identifier"),
        (
            {"__annotations__": {"x": int}, "__dataflow__": {"multitenant": True}},
            "unknown option 'multitenant'",
        ),
        ({"__annotations__": {"x": int}, "__indexes__": [{"fields": ["y"]}]}, "no field 'y'"),
        (
            {"__annotations__": {"x": int}, "__dataflow__": {"soft_delete": "yes"}},
            "soft_delete'] must be True or False",
        ),
        (
            {"__annotations__": {"x": int}, "__dataflow__": {"versioned": {"strict": True}}},
            "must be True, False or",
        ),
        (
            {"__annotations__": {"x": int}, "__dataflow__": {"encryption": {"fields": ["x"]}}},
            "option 'encryption' is not available",
        ),
        (
            {"__annotations__": {"version": int}, "__dataflow__": {"versioned": True}},
            "the 'versioned' option adds 'version' itself",
        ),
        (
            {"__annotations__": {"tenant_id": str}, "__dataflow__": {"multi_tenant": True}},
            "the 'multi_tenant' option adds 'tenant_id' itself",
        ),
    ],
)
def test_bad_models_are_refused_with_the_reason(body, message):
    thing = type("Thing", (), body)
    with pytest.raises(ModelDefinitionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        model_spec(thing)


def test_each_option_adds_its_columns_and_nodes():
    db = DataFlow(":memory:")

    @db.model
    class Ledger:
        amount: int
        __dataflow__ = {
            "multi_tenant": True,
            "soft_delete": True,
            "versioned": True,
            "audit_log": True,
        }

    spec = db.get_model("Ledger")
    added = {n: (f.type.name, f.nullable) for n, f in spec.fields.items() if f.managed}
    assert added == {
        "created_at": ("datetime", False),
        "updated_at": ("datetime", False),
        "tenant_id": ("str", False),
        "deleted_at": ("datetime", True),
        "version": ("int", False),
    }
    assert {"LedgerRestoreNode", "LedgerAuditNode"} <= set(db.nodes)
    assert "tenant_id" in db.nodes["LedgerListNode"].parameters
    assert "actor" in db.nodes["LedgerCreateNode"].parameters
    assert "actor" not in db.nodes["LedgerListNode"].parameters
    assert "version" in db.nodes["LedgerUpdateNode"].parameters
    db.close()


def test_every_node_of_a_model_is_registered():
    db = DataFlow(":memory:")

    @db.model
    class Gadget:
        name: str

    ops = [
        "Create",
        "Read",
        "Update",
        "Delete",
        "List",
        "Count",
        "Upsert",
        "BulkCreate",
        "BulkUpdate",
        "BulkDelete",
        "BulkUpsert",
    ]
    for op in ops:
        assert f"Gadget{op}Node" in default_registry
        assert f"Gadget{op}Node" in db.nodes
    db.close()


def test_two_models_cannot_share_a_table():
    db = DataFlow(":memory:")

    @db.model
    class A:
        x: int
        __tablename__ = "shared"

    with pytest.raises(ModelDefinitionError, match="already belongs to model A"):

        @db.model
        class B:
            x: int
            __tablename__ = "shared"

    db.close()
