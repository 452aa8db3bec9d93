"""Input that no node may take is a 422 naming the parameter over REST, never a 500."""

from __future__ import annotations

import json

import pytest

from dataflow import DataFlow
from nexus import Nexus
from tests.nexus.conftest import define_shop

TOO_BIG = 2**63


@pytest.fixture
def api(tmp_path, serve):
    db = DataFlow(f"sqlite:///{tmp_path / 'shop.db'}")
    define_shop(db)
    yield serve(Nexus("Shop", dataflow_integration=db).api)
    db.close()


def refused(out, field: str | None) -> dict:
    assert out.status_code == 422, out.text
    body = out.json()
    assert body.get("field") == field
    return body


@pytest.mark.parametrize(
    ("method", "path", "params", "field"),
    [
        ("GET", f"/api/products/{TOO_BIG}", {}, "id"),
        ("DELETE", f"/api/products/{TOO_BIG}", {}, "id"),
        ("GET", f"/api/products/{-TOO_BIG - 1}", {}, "id"),
        ("GET", "/api/products", {"limit": TOO_BIG}, "limit"),
        ("GET", "/api/products", {"offset": TOO_BIG}, "offset"),
    ],
)
def test_integers_beyond_64_bits_in_paths_and_queries_are_422(api, method, path, params, field):
    body = refused(api.request(method, path, params=params), field)
    assert "922337203685477580" in body["message"]  # the 64-bit bound it crossed


def test_integers_beyond_64_bits_in_bodies_are_422(api):
    messages = [
        refused(api.post("/api/products/query", json={"limit": TOO_BIG}), "limit")["message"],
        refused(api.post("/api/products/query", json={"offset": TOO_BIG}), "offset")["message"],
        refused(api.patch(f"/api/products/{TOO_BIG}", json={"name": "x"}), "id")["message"],
    ]
    assert messages[:2] == [
        "'limit': an integer beyond 64 bits; no column stores it",
        "'offset': an integer beyond 64 bits; no column stores it",
    ]
    assert "less than or equal to 9223372036854775807" in messages[2]


@pytest.mark.parametrize("sort", [[{"name": {}}], [{"name": [1]}], [["name"]], [{"name": True}]])
def test_a_sort_whose_direction_is_no_scalar_is_422(api, sort):
    listed = api.get("/api/products", params={"sort": json.dumps(sort)})
    assert "a sort is a list of keys" in refused(listed, "sort")["message"]
    refused(api.post("/api/products/query", json={"sort": sort}), "sort")


@pytest.mark.parametrize("operation", ["create", "upsert"])
def test_a_bulk_create_or_upsert_without_data_is_422_naming_data(api, operation):
    out = api.post("/api/products/bulk", json={"operation": operation})
    assert "required" in refused(out, "data")["message"].lower()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_literals_in_bodies_are_422(api, literal):
    headers = {"content-type": "application/json"}
    made = api.post(
        "/api/products", content=f'{{"name": "x", "price": {literal}}}', headers=headers
    )
    assert f"{literal} is not a JSON number" in refused(made, None)["message"]
    query = f'{{"filter": {{"price": {{"$gt": {literal}}}}}}}'
    refused(api.post("/api/products/query", content=query, headers=headers), None)
    listed = api.get("/api/products", params={"filter": f'{{"price": {literal}}}'})
    assert "finite" in refused(listed, "filter")["message"]
    assert api.get("/api/products").json()["count"] == 0


def test_a_body_that_is_not_json_is_422_saying_so(api):
    out = api.post("/api/products", content="{nope", headers={"content-type": "application/json"})
    assert refused(out, None)["message"].startswith("the body is not valid JSON")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/products/aggregate", {"group_by": ["sku", "name", "sku"]}, "group_by"),
        ("/api/products/query", {"fields": ["name", "name"]}, "fields"),
    ],
)
def test_a_field_named_twice_in_a_list_of_names_is_422(api, path, body, field):
    api.post("/api/products", json={"name": "Lamp", "price": 1.0, "sku": "L1"})
    out = api.post(path, json=body)
    assert "more than once" in refused(out, field)["message"]


def test_values_no_column_stores_are_422_naming_where_they_are(api):
    api.post("/api/products", json={"name": "Lamp", "price": 1.0})
    change = {"operation": "update", "filter": {"name": "Lamp"}, "update": {"price": TOO_BIG}}
    refused(api.post("/api/products/bulk", json=change), "update.price")
    headers = {"content-type": "application/json"}
    surrogate = '{"name": "\\ud800", "price": 1.0}'
    made = api.post("/api/products", content=surrogate, headers=headers)
    assert "lone surrogate" in refused(made, "name")["message"]
    listed = api.get("/api/products", params={"filter": '{"name": "\\udfff"}'})
    refused(listed, "filter.name")
    assert [r["price"] for r in api.get("/api/products").json()["records"]] == [1.0]


@pytest.mark.parametrize("depth", [300, 100_000])
def test_a_body_nested_too_deeply_is_422(api, depth):
    nested: str = "{}"
    if depth < 1000:
        for _ in range(depth):
            nested = f'{{"$and": [{nested}]}}'
    else:
        nested = "[" * depth + "]" * depth
    out = api.post("/api/products/query", content=f'{{"filter": {nested}}}')
    assert out.status_code == 422, out.text
    assert "nested deeper than 64 levels" in out.json()["message"]
