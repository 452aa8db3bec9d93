"""A multi-tenant model over HTTP on every backend: the caller's tenant scopes every operation."""

from __future__ import annotations

import pytest

from nexus.channels.mcp import tools
from tests.dataflow.conftest import count_rows
from tests.nexus.conftest import acting_for, bearer, mcp_calls, new_tenant


def order(ref: str, total: float = 10.0, customer_id: int = 1) -> dict:
    return {"ref": ref, "customer_id": customer_id, "total": total}


def test_a_tenants_rows_are_invisible_to_another_tenant(orders_api):
    api = orders_api
    one, two = acting_for(new_tenant()), acting_for(new_tenant())
    pk = api.post("/api/orders", json=order("A", 5), headers=one).json()["id"]
    made = api.post(
        "/api/orders/bulk",
        json={"operation": "create", "data": [order("B", 15), order("C", 25)]},
        headers=one,
    )
    assert made.json()["inserted"] == 2

    # Tenant two sees and touches nothing of tenant one's, whatever the operation.
    assert api.get("/api/orders", headers=two).json()["records"] == []
    queried = api.post("/api/orders/query", json={"filter": {"ref": "A"}}, headers=two)
    assert queried.json()["count"] == 0
    assert api.get(f"/api/orders/{pk}", headers=two).status_code == 404
    assert api.patch(f"/api/orders/{pk}", json={"total": 1}, headers=two).status_code == 404
    assert api.put(f"/api/orders/{pk}", json=order("X", 1), headers=two).status_code == 404
    assert api.delete(f"/api/orders/{pk}", headers=two).status_code == 404
    assert api.post(f"/api/orders/{pk}/restore", headers=two).status_code == 404
    assert api.get(f"/api/orders/{pk}/audit", headers=two).json()["records"] == []
    bulk = {
        "update": {"operation": "update", "filter": {}, "update": {"total": 0}},
        "delete": {"operation": "delete", "filter": {}, "confirm_all": True},
    }
    assert api.post("/api/orders/bulk", json=bulk["update"], headers=two).json()["updated"] == 0
    assert api.post("/api/orders/bulk", json=bulk["delete"], headers=two).json()["deleted"] == 0
    # The same key is free in another tenant: the upsert inserts there, updates nothing here.
    upserted = api.post(
        "/api/orders/bulk",
        json={"operation": "upsert", "conflict_on": ["ref"], "data": [order("A", 99)]},
        headers=two,
    ).json()
    assert (upserted["inserted"], upserted["updated"]) == (1, 0)
    totals = {"aggregate": {"n": {"$count": "*"}, "sum": {"$sum": "total"}}}
    assert api.post("/api/orders/aggregate", json=totals, headers=two).json()["records"] == [
        {"n": 1, "sum": 99.0}
    ]
    named = api.get("/api/orders", params={"filter": '{"tenant_id": "other"}'}, headers=two)
    assert named.status_code == 403

    rows = api.get("/api/orders", params={"sort": "ref"}, headers=one).json()["records"]
    assert [(r["ref"], r["total"], r["version"], r["deleted_at"]) for r in rows] == [
        ("A", 5.0, 1, None),
        ("B", 15.0, 1, None),
        ("C", 25.0, 1, None),
    ]
    assert api.post("/api/orders/aggregate", json=totals, headers=one).json()["records"] == [
        {"n": 3, "sum": 45.0}
    ]


def test_a_credentials_tenant_binds_and_the_header_cannot_override_it(orders_api):
    api = orders_api
    mine, theirs = new_tenant(), new_tenant()
    token = bearer({"sub": "ann", "roles": ["admin"], "tenant_id": mine})
    made = api.post("/api/orders", json=order("T"), headers=token)
    assert made.status_code == 201 and made.json()["tenant_id"] == mine
    overridden = api.post("/api/orders", json=order("U"), headers={**token, "X-Tenant-ID": theirs})
    assert overridden.status_code == 403 and overridden.json()["error"] == "tenant_mismatch"
    listed = api.get("/api/orders", headers={**token, "X-Tenant-ID": theirs})
    assert listed.status_code == 403
    assert [r["ref"] for r in api.get("/api/orders", headers=token).json()["records"]] == ["T"]
    assert api.get("/api/orders", headers=acting_for(theirs)).json()["count"] == 0

    # An API key bound to a tenant ("acme") acts for it, and for no other.
    editor = {"X-API-Key": "key-editor-acme"}
    keyed = api.post("/api/orders", json=order(f"K-{mine}"), headers=editor)
    assert keyed.status_code == 201 and keyed.json()["tenant_id"] == "acme"
    elsewhere = api.get(
        f"/api/orders/{keyed.json()['id']}", headers={**editor, "X-Tenant-ID": mine}
    )
    assert elsewhere.status_code == 403
    assert api.get(f"/api/orders/{keyed.json()['id']}", headers=token).status_code == 404


@pytest.mark.parametrize("claim", [["acme", "globex"], ""])
def test_a_token_whose_tenant_claim_is_no_tenant_name_is_401_and_writes_nothing(orders_api, claim):
    token = bearer({"sub": "ann", "roles": ["admin"], "tenant_id": claim})
    refused = orders_api.post("/api/orders", json=order(f"C-{new_tenant()}"), headers=token)
    assert refused.status_code == 401, refused.text
    assert "'tenant_id' claim must be a non-empty string" in refused.json()["message"]
    listed = orders_api.get("/api/orders", headers=acting_for("['acme', 'globex']"))
    assert listed.json()["count"] == 0


def test_without_a_tenant_every_channel_refuses_with_400_and_writes_nothing(
    orders_api, orders_served, cli
):
    api, no_tenant = orders_api, acting_for(None)
    before = count_rows(orders_served.db, "orders")
    calls = [
        ("POST", "/api/orders", order("N")),
        ("GET", "/api/orders", None),
        ("GET", "/api/orders/1", None),
        ("PATCH", "/api/orders/1", {"total": 1}),
        ("DELETE", "/api/orders/1", None),
        ("POST", "/api/orders/bulk", {"operation": "create", "data": [order("N")]}),
        ("POST", "/api/orders/aggregate", {"aggregate": {"n": {"$count": "*"}}}),
        ("POST", "/api/orders/1/restore", None),
        ("GET", "/api/orders/1/audit", None),
        ("POST", "/api/workflows/OrderCreateNode/execute", order("N")),
        ("POST", "/api/workflows/place_order/execute", order("N")),
    ]
    for method, path, body in calls:
        out = api.request(method, path, json=body, headers=no_tenant)
        assert (out.status_code, out.json()["error"]) == (400, "tenant_required"), path
        assert "X-Tenant-ID" in out.json()["message"]

    ((failed, error),) = mcp_calls(orders_served.url, no_tenant, ("orders_create", order("N")))
    assert failed and (error["status"], error["error"]) == (400, "tenant_required")

    create = ["orders", "create", "--ref", "N", "--customer-id", "1", "--total", "2"]
    for where in ([], ["--url", orders_served.url]):
        out = cli("--api-key", "key-admin-0001", *where, *create)
        assert out.exit_code == 1 and "400 tenant_required" in out.output
    assert count_rows(orders_served.db, "orders") == before


def test_tenant_id_is_no_field_of_any_request(orders_api, orders_served):
    api, one = orders_api, acting_for(new_tenant())
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    for name in ("OrderCreate", "OrderPatch", "OrderReplace", "OrderUpsertRow", "OrderListArgs"):
        assert "tenant_id" not in schemas[name]["properties"], name
        assert schemas[name]["additionalProperties"] is False
    for name, tool in tools(orders_served.nexus.service).items():
        assert "tenant_id" not in tool.schema.model_json_schema().get("properties", {}), name

    # A body naming a tenant is refused (422): the credentials and header name it.
    refused = [
        api.post("/api/orders", json={**order("Z"), "tenant_id": "x"}, headers=one),
        api.patch("/api/orders/1", json={"tenant_id": "x"}, headers=one),
        api.post(
            "/api/orders/bulk",
            json={"operation": "create", "data": [{**order("Z"), "tenant_id": "x"}]},
            headers=one,
        ),
        api.post(
            "/api/workflows/OrderCreateNode/execute",
            json={**order("Z"), "tenant_id": "x"},
            headers=one,
        ),
        api.post(
            "/api/workflows/place_order/execute", json={**order("Z"), "tenant_id": "x"}, headers=one
        ),
    ]
    fields = [(r.status_code, r.json()["field"]) for r in refused]
    assert fields == [
        (422, "tenant_id"),
        (422, "tenant_id"),
        (422, "data.0.tenant_id"),
        (422, "tenant_id"),
        (422, "tenant_id"),
    ]
    assert api.get("/api/orders", headers=one).json()["count"] == 0


def test_a_registered_workflow_runs_for_the_callers_tenant(orders_api):
    api = orders_api
    one, two = new_tenant(), new_tenant()
    inputs = {"ref": "W", "customer_id": 7, "total": "12.5"}
    out = api.post("/api/workflows/place_order/execute", json=inputs, headers=acting_for(one))
    assert out.status_code == 200, out.text
    results = out.json()["results"]
    assert results["create"]["tenant_id"] == one and results["create"]["total"] == 12.5
    assert [r["ref"] for r in results["mine"]["records"]] == ["W"]

    # Another tenant's run sees only its own rows, through a token's tenant claim too.
    token = bearer({"roles": ["admin"], "tenant_id": two})
    again = api.post(
        "/api/workflows/place_order/execute", json={**inputs, "ref": "W2"}, headers=token
    ).json()["results"]
    assert again["create"]["tenant_id"] == two
    assert [r["ref"] for r in again["mine"]["records"]] == ["W2"]


def test_mcp_tools_and_cli_commands_act_for_the_callers_tenant(orders_served, cli):
    one, two = new_tenant(), new_tenant()
    made, listed = mcp_calls(
        orders_served.url,
        acting_for(one),
        ("orders_create", order("M", 3)),
        ("orders_list", {}),
    )
    assert not made[0] and made[1]["tenant_id"] == one
    assert [r["ref"] for r in listed[1]["records"]] == ["M"]
    ((_, elsewhere),) = mcp_calls(orders_served.url, acting_for(two), ("orders_list", {}))
    assert elsewhere["records"] == []

    for where in ([], ["--url", orders_served.url]):
        out = cli(
            "--api-key", "key-admin-0001", "--tenant", two, *where, "orders", "list", "--json"
        )
        assert out.exit_code == 0, out.output
        assert '"records": []' in out.output


def test_nodes_that_run_other_nodes_are_not_served_alone(orders_api, orders_served):
    # A saga's steps carry their own params, tenant included: served alone it would let a
    # caller act for any tenant, and on any model whatever its roles allow.
    one = acting_for(new_tenant())
    steps = [{"node": "OrderListNode", "params": {"tenant_id": "acme"}, "compensation": None}]
    out = orders_api.post(
        "/api/workflows/TransactionManagerNode/execute", json={"steps": steps}, headers=one
    )
    assert (out.status_code, out.json()["error"]) == (404, "not_found")
    served = tools(orders_served.nexus.service)
    assert "TransactionManagerNode" not in served and "TransactionScopeNode" not in served
    assert {"orders_restore", "orders_audit"} <= set(served)
