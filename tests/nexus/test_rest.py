"""The REST channel end to end: a real uvicorn server, called over HTTP, on every backend."""

from __future__ import annotations

import json

import pytest

from kailash.servers.gateway import create_gateway
from nexus import Nexus
from tests.dataflow.conftest import count_rows
from tests.nexus.conftest import define_shop


@pytest.fixture
def api(db, serve):
    define_shop(db)
    return serve(Nexus("Shop", dataflow_integration=db).api)


def test_crud_round_trip(api):
    created = api.post("/api/products", json={"name": "Lamp", "price": 20, "sku": "L-1"})
    assert created.status_code == 201
    record = created.json()
    assert record["name"] == "Lamp" and record["price"] == 20.0 and record["active"] is True
    assert record["created_at"].endswith("Z")
    pk = record["id"]

    assert api.get(f"/api/products/{pk}").json() == record
    patched = api.patch(f"/api/products/{pk}", json={"price": 25.5})
    assert patched.status_code == 200
    assert patched.json()["price"] == 25.5 and patched.json()["name"] == "Lamp"

    replaced = api.put(f"/api/products/{pk}", json={"name": "Desk lamp", "price": 30})
    assert replaced.status_code == 200
    # A replacement resets what it leaves out to the defaults.
    assert {k: replaced.json()[k] for k in ("name", "price", "sku", "active")} == {
        "name": "Desk lamp",
        "price": 30.0,
        "sku": None,
        "active": True,
    }

    deleted = api.delete(f"/api/products/{pk}")
    assert deleted.json() == {"id": pk, "deleted": True, "soft": False}
    assert api.get(f"/api/products/{pk}").status_code == 404


def test_list_filters_sorts_pages_and_projects(api):
    for name, price in [("a", 5), ("b", 15), ("c", 25), ("d", 15)]:
        api.post("/api/products", json={"name": name, "price": price})
    page = api.get(
        "/api/products",
        params={
            "filter": json.dumps({"price": 15}),
            "sort": "-name",
            "fields": "name,price",
            "count_total": "true",
        },
    ).json()
    assert page["records"] == [{"name": "d", "price": 15.0}, {"name": "b", "price": 15.0}]
    assert page["total"] == 2 and page["count"] == 2

    paged = api.get("/api/products", params={"sort": "name", "limit": 2, "offset": 1}).json()
    assert [r["name"] for r in paged["records"]] == ["b", "c"]
    assert (paged["limit"], paged["offset"]) == (2, 1)

    queried = api.post(
        "/api/products/query", json={"filter": {"name": "c"}, "fields": ["id", "name"]}
    ).json()
    assert [r["name"] for r in queried["records"]] == ["c"]
    assert set(queried["records"][0]) == {"id", "name"}


def test_list_filters_with_operators_and_pages_by_cursor(api):
    for name, price in [("a", 5), ("b", 15), ("c", 25), ("d", 10)]:
        api.post("/api/products", json={"name": name, "price": price})
    over = {"filter": json.dumps({"price": {"$gt": 10}}), "sort": "name"}
    assert [r["name"] for r in api.get("/api/products", params=over).json()["records"]] == [
        "b",
        "c",
    ]
    either = {"$or": [{"price": {"$lte": 5}}, {"name": {"$in": ["d"]}}]}
    queried = api.post("/api/products/query", json={"filter": either, "sort": ["name"]}).json()
    assert [r["name"] for r in queried["records"]] == ["a", "d"]

    first = api.get("/api/products", params={"sort": "-price", "limit": 3}).json()
    assert [r["name"] for r in first["records"]] == ["c", "b", "d"]
    rest = {"sort": "-price", "limit": 3, "after": first["next_cursor"]}
    last = api.get("/api/products", params=rest).json()
    assert [r["name"] for r in last["records"]] == ["a"] and last["next_cursor"] is None


def test_bulk_create_update_upsert_delete(api, db):
    created = api.post(
        "/api/products/bulk",
        json={
            "operation": "create",
            "data": [{"name": f"p{i}", "price": i, "sku": f"S{i}"} for i in range(5)],
        },
    )
    assert created.status_code == 200 and created.json()["inserted"] == 5
    updated = api.post(
        "/api/products/bulk",
        json={"operation": "update", "filter": {"name": "p1"}, "update": {"price": 100}},
    )
    assert updated.json()["updated"] == 1
    upserted = api.post(
        "/api/products/bulk",
        json={
            "operation": "upsert",
            "conflict_on": ["sku"],
            "data": [
                {"name": "p0", "price": 7, "sku": "S0"},
                {"name": "new", "price": 1, "sku": "S9"},
            ],
        },
    )
    assert (upserted.json()["inserted"], upserted.json()["updated"]) == (1, 1)
    deleted = api.post("/api/products/bulk", json={"operation": "delete", "filter": {"name": "p2"}})
    assert deleted.json()["deleted"] == 1
    assert count_rows(db, "products") == 5
    prices = {r["name"]: r["price"] for r in api.get("/api/products").json()["records"]}
    assert prices == {"p0": 7.0, "p1": 100.0, "p3": 3.0, "p4": 4.0, "new": 1.0}


def test_an_empty_bulk_delete_filter_is_refused_and_deletes_nothing(api, db):
    api.post("/api/products", json={"name": "keep", "price": 1})
    refused = api.post("/api/products/bulk", json={"operation": "delete", "filter": {}})
    assert refused.status_code == 422
    assert "confirm_all" in refused.json()["message"]
    assert count_rows(db, "products") == 1


def test_aggregate_groups_records(api):
    for name, price in [("a", 5), ("a", 15), ("b", 25)]:
        api.post("/api/products", json={"name": name, "price": price})
    out = api.post(
        "/api/products/aggregate",
        json={"group_by": ["name"], "aggregate": {"total": {"$sum": "price"}}, "sort": ["name"]},
    ).json()
    assert [(r["name"], r["total"]) for r in out["records"]] == [("a", 20), ("b", 25)]


def test_validation_errors_are_422_with_the_field_path(api, db):
    wrong_type = api.post("/api/products", json={"name": "x", "price": "cheap"})
    assert wrong_type.status_code == 422
    assert wrong_type.json()["field"] == "price"
    missing = api.post("/api/products", json={"name": "x"})
    assert (missing.status_code, missing.json()["field"]) == (422, "price")
    unknown = api.post("/api/products", json={"name": "x", "price": 1, "colour": "red"})
    assert (unknown.status_code, unknown.json()["field"]) == (422, "colour")
    bad_filter = api.get("/api/products", params={"filter": json.dumps({"prise": 1})})
    assert bad_filter.status_code == 422
    assert bad_filter.json()["field"] == "filter.prise"
    assert "Did you mean 'price'" in bad_filter.json()["message"]
    not_json = api.get("/api/products", params={"filter": "{oops"})
    assert (not_json.status_code, not_json.json()["field"]) == (422, "filter")
    bad_row = api.post(
        "/api/products/bulk",
        json={"operation": "create", "data": [{"name": "ok", "price": 1}, {"name": "bad"}]},
    )
    assert bad_row.status_code == 422 and bad_row.json()["field"] == "data.1.price"
    assert count_rows(db, "products") == 0


def test_not_found_is_404(api):
    for method in ("get", "delete"):
        response = getattr(api, method)("/api/products/4242")
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
        assert "4242" in response.json()["message"]
    assert api.patch("/api/products/4242", json={"price": 1}).status_code == 404


def test_a_unique_violation_is_409_without_the_row_values(api):
    api.post("/api/products", json={"name": "one", "price": 1, "sku": "SECRET-SKU-1"})
    clash = api.post("/api/products", json={"name": "two", "price": 2, "sku": "SECRET-SKU-1"})
    assert clash.status_code == 409
    assert clash.json()["error"] == "conflict"
    assert "SECRET-SKU-1" not in clash.text


def test_any_node_executes_through_the_workflow_endpoint(api):
    out = api.post("/api/workflows/ProductCreateNode/execute", json={"name": "Test", "price": 100})
    assert out.status_code == 200
    body = out.json()
    assert body["result"]["name"] == "Test" and len(body["run_id"]) == 32
    listed = api.post("/api/workflows/ProductListNode/execute", json={"filter": {"name": "Test"}})
    assert listed.json()["result"]["count"] == 1
    refused = api.post("/api/workflows/ProductCreateNode/execute", json={"name": "x", "price": "1"})
    assert (refused.status_code, refused.json()["field"]) == (422, "price")
    assert api.post("/api/workflows/NoSuchNode/execute", json={}).status_code == 404


def test_openapi_describes_every_field(api):
    spec = api.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    create = schemas["ProductCreate"]
    assert create["required"] == ["name", "price"]
    assert create["properties"]["price"]["type"] == "number"
    assert create["properties"]["active"]["default"] is True
    assert create["additionalProperties"] is False
    record = schemas["Product"]["properties"]
    assert set(record) == {
        "id",
        "name",
        "price",
        "sku",
        "active",
        "released",
        "created_at",
        "updated_at",
    }
    assert {"type": "string", "format": "date-time"} in record["released"]["anyOf"]
    paths = spec["paths"]
    assert {"get", "post"} <= set(paths["/api/products"])
    assert {"get", "put", "patch", "delete"} <= set(paths["/api/products/{id}"])
    assert "/api/products/bulk" in paths
    assert "/api/workflows/ProductCreateNode/execute" in paths
    assert api.get("/docs").status_code == 200


def test_health_and_prometheus_metrics(db, serve):
    define_shop(db)
    nexus = Nexus(
        "Shop",
        dataflow_integration=db,
        monitoring_config={"prometheus_enabled": True, "track_database_metrics": True},
    )
    api = serve(nexus.api)
    assert api.get("/health").json()["models"] == ["products"]
    api.post("/api/products", json={"name": "x", "price": 1})
    api.get("/api/products/999")
    text = api.get("/metrics").text
    assert 'gateway_requests_total{method="POST",route="/api/products",status="201"} 1.0' in text
    assert 'route="/api/products/{id}",status="404"' in text
    assert (
        'gateway_operations_total{operation="create",outcome="ok",resource="Product"} 1.0' in text
    )


def test_metrics_are_off_unless_monitoring_is_on(db, serve):
    define_shop(db)
    api = serve(Nexus("Shop", dataflow_integration=db).api)
    assert api.get("/metrics").status_code == 404


def test_switched_off_operations_are_not_served(db, serve):
    define_shop(db)
    nexus = Nexus(
        "Shop",
        dataflow_integration=db,
        dataflow_config={"expose_bulk_operations": False, "auto_generate_endpoints": True},
    )
    api = serve(nexus.api)
    paths = api.get("/openapi.json").json()["paths"]
    assert "/api/products/bulk" not in paths
    assert "/api/workflows/ProductBulkCreateNode/execute" not in paths
    assert api.post("/api/products/bulk", json={"operation": "create", "data": []}).status_code in (
        404,
        405,
    )


def test_create_gateway_serves_the_same_api(db, serve):
    define_shop(db)
    api = serve(create_gateway(title="Products", dataflow_integration=db, server_type="basic"))
    made = api.post("/api/products", json={"name": "g", "price": 2})
    assert made.status_code == 201
    assert api.get(f"/api/products/{made.json()['id']}").json()["name"] == "g"
    assert api.get("/metrics").status_code == 404
