"""The guide's Nexus and gateway blocks, word for word, serving what their comments promise."""

from __future__ import annotations

import json
import re
import shlex
import time

import anyio
import httpx
import jwt
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from websockets.sync.client import connect

from kailash import WorkflowBuilder
from tests.examples.guide import block, run_block
from tests.nexus.conftest import nexus_command, run_nexus, served

NEXUS = "DataFlow + Nexus Integration"
GATEWAY = "Gateway API Generation"
PARAMETERS = "Nexus Integration Parameters"
COMPLETE = "Complete Nexus Integration Pattern"


@pytest.fixture
def guide_env(tmp_path, monkeypatch, fresh_url):
    """DATABASE_URL for the zero-config ``DataFlow()`` of the blocks; the cwd a fresh folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", fresh_url)
    return tmp_path


@pytest.mark.parametrize("fresh_url", ["sqlite", "postgresql"], indirect=True)
def test_the_nexus_block_serves_rest_cli_and_mcp(guide_env, monkeypatch):
    scope = run_block(NEXUS)
    nexus = scope["nexus"]

    # REST API: POST /api/workflows/ProductCreateNode/execute
    with served(nexus.api) as url:
        made = httpx.post(
            f"{url}/api/workflows/ProductCreateNode/execute", json={"name": "Test", "price": 100}
        )
        assert made.status_code == 200 and made.json()["result"]["name"] == "Test"

    # CLI: nexus execute ProductCreateNode --name "Test" --price 100
    (guide_env / "guideapp.py").write_text(block(NEXUS), encoding="utf-8")
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": _url_of(scope["db"]),
        "PYTHONPATH": str(guide_env),
    }
    command = 'execute ProductCreateNode --name "Test" --price 100 --json'
    cli = run_nexus(env, "--app", "guideapp:nexus", *shlex.split(command))
    assert json.loads(cli.stdout)["result"]["price"] == 100

    # MCP: available to AI agents for data operations
    async def agent() -> list:
        params = StdioServerParameters(
            command=nexus_command(),
            args=["--app", "guideapp:nexus", "mcp"],
            env=env,
            cwd=str(guide_env),
        )
        async with Client(params) as client:
            listed = await client.call_tool("products_list", {"filter": {"name": "Test"}})
            return listed.structured_content["records"]

    assert len(anyio.run(agent)) == 2
    scope["db"].close()


def _url_of(db) -> str:
    return db.target.url.render_as_string(hide_password=False)


@pytest.mark.parametrize("fresh_url", ["sqlite"], indirect=True)
def test_the_gateway_block_creates_the_crud_endpoints(guide_env, monkeypatch):
    db = run_block(NEXUS)["db"]
    monkeypatch.setenv(
        "KAILASH_AUTH_CONFIG", json.dumps({"api_keys": {"key-guide-0001": {"roles": ["admin"]}}})
    )
    gateway = run_block(GATEWAY, {"db": db})["gateway"]
    with served(gateway) as url:
        api = httpx.Client(base_url=url, headers={"X-API-Key": "key-guide-0001"})
        # authentication_required=True: nothing is served without credentials
        assert httpx.get(f"{url}/api/products").status_code == 401
        made = api.post("/api/products", json={"name": "Lamp", "price": 9.5})  # Create product
        assert made.status_code == 201
        pk = made.json()["id"]
        assert api.get("/api/products").json()["records"][0]["name"] == "Lamp"  # List products
        assert api.get(f"/api/products/{pk}").json()["price"] == 9.5  # Get product
        replaced = api.put(f"/api/products/{pk}", json={"name": "Lamp", "price": 12.0})
        assert replaced.json()["price"] == 12.0  # Update product
        assert api.delete(f"/api/products/{pk}").json()["deleted"] is True  # Delete product
        assert api.get(f"/api/products/{pk}").status_code == 404
        assert "gateway_requests_total" in api.get("/metrics").text  # server_type="enterprise"
    db.close()


@pytest.mark.parametrize("fresh_url", ["sqlite"], indirect=True)
def test_the_parameter_block_registers_a_templated_workflow(guide_env):
    scope = run_block(NEXUS)
    nexus_workflow = run_block(PARAMETERS, {"nexus_workflow": WorkflowBuilder()})["nexus_workflow"]
    scope["nexus"].register("create_product", nexus_workflow)
    with served(scope["nexus"].api) as url:
        out = httpx.post(
            f"{url}/api/workflows/create_product/execute",
            json={"product_name": "Lamp", "product_price": 19.99},
        )
    created = out.json()["results"]["create"]
    assert (created["name"], created["price"]) == ("Lamp", 19.99)
    scope["db"].close()


#: What an operator adds outside the code: the key its OAuth2 server signs access tokens with.
IDP = {"secret": "the-idps-hs256-signing-key-of-32-bytes!", "issuer": "https://idp.example"}


def access_token(**claims: object) -> str:
    payload = {"iss": IDP["issuer"], "exp": int(time.time()) + 300, **claims}
    return jwt.encode(payload, IDP["secret"], algorithm="HS256")


@pytest.mark.parametrize("fresh_url", ["sqlite"], indirect=True)
def test_the_complete_block_serves_every_channel_under_its_auth(guide_env, monkeypatch):
    auth_env = json.dumps({"jwt": IDP})
    monkeypatch.setenv("KAILASH_AUTH_CONFIG", auth_env)
    scope = run_block(COMPLETE)
    nexus, code = scope["nexus"], block(COMPLETE)
    token = access_token(sub="alice", roles=["admin"], tenant_id="acme")
    with served(nexus.api) as url:
        # rbac_enabled: nothing is served to a caller without an access token
        assert httpx.get(f"{url}/api/orders").status_code == 401
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})

        # API: Full CRUD + bulk operations + analytics
        made = api.post("/api/orders", json={"customer_id": 7, "total": 40.0})
        assert made.status_code == 201 and made.json()["tenant_id"] == "acme"
        pk = made.json()["id"]
        assert api.patch(f"/api/orders/{pk}", json={"status": "paid"}).json()["status"] == "paid"
        replaced = api.put(f"/api/orders/{pk}", json={"customer_id": 7, "total": 45.0})
        assert (replaced.json()["total"], replaced.json()["status"]) == (45.0, "pending")
        bulk = {"operation": "create", "data": [{"customer_id": 8, "total": t} for t in (5, 6)]}
        assert api.post("/api/orders/bulk", json=bulk).json()["inserted"] == 2
        shipped = {
            "operation": "update",
            "filter": {"customer_id": 8},
            "update": {"status": "shipped"},
        }
        assert api.post("/api/orders/bulk", json=shipped).json()["updated"] == 2
        by_status = {"group_by": ["status"], "aggregate": {"sum": {"$sum": "total"}}}
        analytics = api.post("/api/orders/aggregate", json=by_status).json()["records"]
        assert analytics == [{"status": "pending", "sum": 45.0}, {"status": "shipped", "sum": 11.0}]
        assert api.delete(f"/api/orders/{pk}").json() == {"id": pk, "deleted": True, "soft": False}
        trail = api.get(f"/api/orders/{pk}/audit").json()["records"]  # 'audit_log': True
        assert [(e["action"], e["actor"]) for e in trail] == [
            ("create", "alice"),
            ("update", "alice"),
            ("update", "alice"),
            ("delete", "alice"),
        ]

        # CLI: nexus orders create --customer-id 123 --total 250.00
        command = re.search(r"# - CLI: (.+)", code).group(1)
        (guide_env / "guideapp.py").write_text(code, encoding="utf-8")
        env = {
            "PATH": "/usr/bin:/bin",
            "DATABASE_URL": _url_of(scope["db"]),
            "PYTHONPATH": str(guide_env),
            "NEXUS_APP": "guideapp:nexus",
            "KAILASH_AUTH_CONFIG": auth_env,
            "NEXUS_TOKEN": token,  # or --token; the tenant comes from its claim
        }
        assert shlex.split(command)[0] == "nexus"
        run_nexus(env, *shlex.split(command)[1:])
        created = api.get("/api/orders", params={"filter": json.dumps({"customer_id": 123})})
        assert [(r["total"], r["tenant_id"]) for r in created.json()["records"]] == [
            (250.0, "acme")
        ]

        # MCP: AI agents can perform database operations
        async def agent() -> tuple[set[str], list]:
            transport = streamable_http_client(
                f"{url}/mcp",
                http_client=create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}),
            )
            async with Client(transport) as client:
                names = {t.name for t in (await client.list_tools()).tools}
                listed = await client.call_tool("orders_list", {"filter": {"customer_id": 123}})
                return names, listed.structured_content["records"]

        names, records = anyio.run(agent)
        assert {"orders_create", "orders_bulk_create", "orders_aggregate", "orders_audit"} <= names
        assert [r["total"] for r in records] == [250.0]

        # monitoring_config: Prometheus metrics, database operations included
        metrics = api.get("/metrics").text
        assert (
            'gateway_requests_total{method="POST",route="/api/orders",status="201"} 1.0' in metrics
        )
        assert (
            'gateway_operations_total{operation="aggregate",outcome="ok",resource="Order"}'
            in metrics
        )

        # WebSocket: Real-time database change notifications
        changes = url.replace("http://", "ws://") + "/ws/changes"
        with connect(changes, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
            assert json.loads(ws.recv(timeout=10)) == {"type": "subscribed", "models": ["orders"]}
            made = api.post("/api/orders", json={"customer_id": 9, "total": 1.0}).json()
            change = json.loads(ws.recv(timeout=10))
            assert (change["action"], change["ids"], change["tenant_id"]) == (
                "create",
                [made["id"]],
                "acme",
            )
    scope["db"].close()
