"""Workflows registered with Nexus: ``{{input}}`` placeholders filled, typed, per call."""

from __future__ import annotations

import pytest

from kailash import WorkflowBuilder
from kailash.servers.gateway.errors import GatewayConfigurationError
from nexus import Nexus
from tests.nexus.conftest import define_shop


def create_product_workflow() -> WorkflowBuilder:
    nexus_workflow = WorkflowBuilder()
    nexus_workflow.add_node(
        "ProductCreateNode",
        "create",
        {
            "name": "{{product_name}}",
            "price": "{{product_price}}",
        },
    )
    nexus_workflow.add_node("ProductListNode", "list", {"filter": {"name": "{{product_name}}"}})
    nexus_workflow.add_connection("create", "result", "list", "input")
    return nexus_workflow


@pytest.fixture
def shop(db, serve):
    define_shop(db)
    nexus = Nexus("Shop", dataflow_integration=db)
    nexus.register("create_product", create_product_workflow())
    return nexus, serve(nexus.api)


def test_placeholders_are_filled_with_typed_inputs(shop):
    _, api = shop
    out = api.post(
        "/api/workflows/create_product/execute",
        json={"product_name": "Lamp", "product_price": "19.99"},
    )
    assert out.status_code == 200, out.text
    results = out.json()["results"]
    assert results["create"]["price"] == 19.99  # "19.99" became the float the field needs
    assert results["list"]["records"][0]["name"] == "Lamp"
    assert api.get(f"/api/products/{results['create']['id']}").json()["price"] == 19.99


def test_a_missing_input_is_422_naming_it(shop, db):
    _, api = shop
    out = api.post("/api/workflows/create_product/execute", json={"product_name": "Lamp"})
    assert out.status_code == 422
    assert out.json()["field"] == "product_price"
    assert "product_price" in out.json()["message"]
    wrong = api.post(
        "/api/workflows/create_product/execute",
        json={"product_name": "Lamp", "product_price": "cheap"},
    )
    assert (wrong.status_code, wrong.json()["field"]) == (422, "product_price")
    assert api.get("/api/products").json()["count"] == 0


def test_the_inputs_are_documented(shop):
    _, api = shop
    spec = api.get("/openapi.json").json()
    inputs = spec["components"]["schemas"]["CreateProductInputs"]
    assert inputs["required"] == ["product_name", "product_price"]
    assert inputs["properties"]["product_price"]["type"] == "number"


def test_registering_after_the_api_is_built_adds_the_route(shop):
    nexus, api = shop
    wf = WorkflowBuilder()
    wf.add_node("ProductCountNode", "count", {})
    nexus.register("count_products", wf)
    out = api.post("/api/workflows/count_products/execute", json={})
    assert out.json()["results"]["count"] == {"count": 0}


def test_a_workflow_may_not_take_a_node_types_name(db):
    define_shop(db)
    nexus = Nexus("Shop", dataflow_integration=db)
    with pytest.raises(GatewayConfigurationError, match="node type"):
        nexus.register("ProductCreateNode", create_product_workflow())
