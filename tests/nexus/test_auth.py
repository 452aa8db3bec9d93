"""Auth and tenancy over HTTP: refusals touch nothing; the tenant reaches the nodes."""

from __future__ import annotations

import time

import jwt
import pytest

from dataflow import DataFlow
from nexus import Nexus
from tests.dataflow.conftest import count_rows
from tests.nexus.conftest import TenantEchoNode, define_shop

SECRET = "an-hs256-secret-of-32-bytes-at-least!"
AUTH = {
    "api_keys": {
        "key-admin-0001": {"roles": ["admin"]},
        "key-viewer-0001": {"roles": ["viewer"]},
        "key-acme-admin1": {"roles": ["admin"], "tenant_id": "acme"},
    },
    "jwt": {"secret": SECRET},
    "rbac_enabled": True,
}


def bearer(claims: dict, ttl: int = 60) -> dict:
    encoded = jwt.encode({"exp": int(time.time()) + ttl, **claims}, SECRET, algorithm="HS256")
    return {"Authorization": f"Bearer {encoded}"}


@pytest.fixture
def shop(tmp_path):
    db = DataFlow(f"sqlite:///{tmp_path / 'shop.db'}", tenant_id_header="X-Org")
    define_shop(db)
    db.register_node(TenantEchoNode, "TenantEchoNode")
    yield db
    db.close()


@pytest.fixture
def api(shop, serve):
    return serve(
        Nexus("Shop", dataflow_integration=shop, auth_config=AUTH, authentication_required=True).api
    )


def test_calls_without_valid_credentials_are_401_and_touch_nothing(api, shop):
    item = {"name": "x", "price": 1}
    assert api.post("/api/products", json=item).status_code == 401
    wrong = api.post("/api/products", json=item, headers={"X-API-Key": "not-a-key-00"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "unauthenticated"
    expired = api.post("/api/products", json=item, headers=bearer({"roles": ["admin"]}, ttl=-5))
    assert expired.status_code == 401 and "expired" in expired.json()["message"]
    assert expired.headers["WWW-Authenticate"] == "Bearer"
    assert count_rows(shop, "products") == 0
    assert api.get("/health").status_code == 200  # health needs no credentials


def test_unauthorised_calls_are_403_before_the_body_is_read(api, shop):
    viewer = {"X-API-Key": "key-viewer-0001"}
    refused = api.post("/api/products", json={"name": "x"}, headers=viewer)
    assert (
        refused.status_code == 403 and "viewer may not create Product" in refused.json()["message"]
    )
    bulk = api.post(
        "/api/products/bulk",
        headers=viewer,
        json={"operation": "create", "data": [{"name": "x", "price": 1}]},
    )
    assert bulk.status_code == 403
    through_node = api.post(
        "/api/workflows/ProductCreateNode/execute", headers=viewer, json={"name": "x", "price": 1}
    )
    assert through_node.status_code == 403
    assert count_rows(shop, "products") == 0
    assert api.get("/api/products", headers=viewer).status_code == 200


def test_api_keys_and_tokens_grant_by_role(api):
    admin = {"X-API-Key": "key-admin-0001"}
    made = api.post("/api/products", json={"name": "a", "price": 1}, headers=admin)
    assert made.status_code == 201
    editor = bearer({"sub": "ann", "roles": ["editor"]})
    pk = made.json()["id"]
    assert api.patch(f"/api/products/{pk}", json={"price": 2}, headers=editor).status_code == 200
    assert (
        api.post(
            "/api/products/bulk",
            headers=editor,
            json={"operation": "delete", "filter": {"name": "a"}},
        ).status_code
        == 403
    )


def test_the_tenant_header_reaches_the_nodes_that_take_a_tenant(api):
    out = api.post(
        "/api/workflows/TenantEchoNode/execute",
        json={"note": "hi"},
        headers={"X-API-Key": "key-admin-0001", "X-Org": "globex"},
    )
    assert out.status_code == 200
    assert out.json()["result"] == {"tenant_id": "globex", "note": "hi"}


def test_a_tokens_tenant_wins_and_cannot_be_overridden(api):
    token = bearer({"roles": ["admin"], "tenant_id": "acme"})
    out = api.post("/api/workflows/TenantEchoNode/execute", json={}, headers=token)
    assert out.json()["result"]["tenant_id"] == "acme"
    same = api.post(
        "/api/workflows/TenantEchoNode/execute", json={}, headers={**token, "X-Org": "acme"}
    )
    assert same.json()["result"]["tenant_id"] == "acme"
    other = api.post(
        "/api/workflows/TenantEchoNode/execute", json={}, headers={**token, "X-Org": "globex"}
    )
    assert other.status_code == 403 and other.json()["error"] == "tenant_mismatch"
    keyed = api.post(
        "/api/workflows/TenantEchoNode/execute",
        json={},
        headers={"X-API-Key": "key-acme-admin1", "X-Org": "globex"},
    )
    assert keyed.status_code == 403


def test_a_caller_cannot_pass_the_tenant_in_the_body(api):
    out = api.post(
        "/api/workflows/TenantEchoNode/execute",
        json={"tenant_id": "globex"},
        headers={"X-API-Key": "key-admin-0001"},
    )
    assert out.status_code == 422 and out.json()["field"] == "tenant_id"


def test_the_tenant_header_name_is_configurable(shop, serve):
    api = serve(
        Nexus("Shop", dataflow_integration=shop, auth_config={"tenant_header": "X-Customer"}).api
    )
    out = api.post(
        "/api/workflows/TenantEchoNode/execute",
        json={},
        headers={"X-Customer": "c1", "X-Org": "ignored"},
    )
    assert out.json()["result"]["tenant_id"] == "c1"


def test_without_auth_required_anonymous_calls_are_served(shop, serve):
    api = serve(Nexus("Shop", dataflow_integration=shop).api)
    assert api.post("/api/products", json={"name": "a", "price": 1}).status_code == 201
    bad = api.get("/api/products", headers={"X-API-Key": "not-a-key-00"})
    assert bad.status_code == 401  # bad credentials are never downgraded to anonymous
