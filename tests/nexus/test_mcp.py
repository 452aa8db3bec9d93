"""The MCP channel through the SDK's own client: over stdio and over streamable HTTP."""

from __future__ import annotations

import json

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from nexus import Nexus
from tests.nexus.conftest import define_shop, nexus_command, served


def stdio(env: dict, *args: str) -> Client:
    params = StdioServerParameters(
        command=nexus_command(), args=[*args, "mcp"], env=env, cwd=env["PYTHONPATH"]
    )
    return Client(params)


def test_stdio_lists_one_tool_per_operation_and_creates_and_lists(app_env):
    async def session() -> None:
        async with stdio(app_env, "--tenant", "acme") as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert {
                "products_create",
                "products_read",
                "products_update",
                "products_delete",
                "products_list",
                "products_bulk_create",
                "create_product",
            } <= set(tools)
            assert not any("sql" in name.lower() for name in tools)
            schema = tools["products_create"].input_schema
            assert schema["required"] == ["name", "price"]
            assert schema["properties"]["price"]["type"] == "number"

            made = await client.call_tool("products_create", {"name": "Lamp", "price": 9.5})
            assert not made.is_error
            assert made.structured_content["name"] == "Lamp"
            listed = await client.call_tool("products_list", {"filter": {"name": "Lamp"}})
            assert [r["price"] for r in listed.structured_content["records"]] == [9.5]

            refused = await client.call_tool("products_create", {"name": "x", "price": "cheap"})
            assert refused.is_error
            error = json.loads(refused.content[0].text)
            assert (error["status"], error["field"]) == (422, "price")

            echoed = await client.call_tool("TenantEchoNode", {})
            assert echoed.structured_content["result"] == {"tenant_id": "acme"}

    anyio.run(session)


def test_stdio_acts_with_the_launch_credentials(app_env):
    env = {
        **app_env,
        "SHOP_AUTH": json.dumps(
            {
                "api_keys": {"key-viewer-0001": {"roles": ["viewer"]}},
                "rbac_enabled": True,
            }
        ),
    }

    async def session() -> None:
        async with stdio(env, "--api-key", "key-viewer-0001") as client:
            refused = await client.call_tool("products_create", {"name": "x", "price": 1})
            assert refused.is_error and json.loads(refused.content[0].text)["status"] == 403
            listed = await client.call_tool("products_list", {})
            assert not listed.is_error and listed.structured_content["count"] == 0

    anyio.run(session)


def test_streamable_http_authenticates_each_call_from_its_request(db):
    define_shop(db)
    nexus = Nexus(
        "Shop",
        dataflow_integration=db,
        authentication_required=True,
        auth_config={"api_keys": {"key-admin-0001": {"roles": ["admin"]}}},
    )

    async def session(url: str, with_headers: dict) -> dict:
        transport = streamable_http_client(
            f"{url}/mcp", http_client=create_mcp_http_client(headers=with_headers)
        )
        async with Client(transport) as client:
            made = await client.call_tool("products_create", {"name": "Lamp", "price": 2.0})
            return {"error": made.is_error, "body": made.structured_content or made.content[0].text}

    with served(nexus.api) as url:
        anonymous = anyio.run(session, url, {})
        assert anonymous["error"] and json.loads(anonymous["body"])["status"] == 401
        admitted = anyio.run(session, url, {"X-API-Key": "key-admin-0001"})
        assert not admitted["error"] and admitted["body"]["name"] == "Lamp"
