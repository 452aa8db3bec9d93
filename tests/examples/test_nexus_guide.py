"""The guide's Nexus and gateway blocks, word for word, serving what their comments promise."""

from __future__ import annotations

import json
import shlex

import anyio
import httpx
import pytest
from mcp import Client, StdioServerParameters

from kailash import WorkflowBuilder
from tests.examples.guide import block, run_block
from tests.nexus.conftest import nexus_command, run_nexus, served

NEXUS = "DataFlow + Nexus Integration"
GATEWAY = "Gateway API Generation"
PARAMETERS = "Nexus Integration Parameters"


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
