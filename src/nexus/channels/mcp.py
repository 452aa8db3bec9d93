"""The MCP channel (official ``mcp`` SDK): one tool per model operation, node and workflow.

Tools act through the same service as REST, so a tool call is authenticated, authorised and
scoped to a tenant exactly like the matching HTTP request. There is no SQL tool: tools take
model fields and the filter language, nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import mcp.types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from pydantic_core import to_jsonable_python

from kailash.servers.gateway.auth import Caller, Credentials
from kailash.servers.gateway.errors import GatewayError
from kailash.servers.gateway.schemas import validate
from kailash.servers.gateway.service import GatewayService, describe


@dataclass(frozen=True, slots=True)
class _Tool:
    schema: Any
    description: str
    run: Callable[[Caller, dict[str, Any]], dict[str, Any]]


def tools(service: GatewayService, model_tools: bool = True) -> dict[str, _Tool]:
    """Every tool by name: ``<plural>_<operation>``, then nodes and workflows by their name."""
    found: dict[str, _Tool] = {}
    owned: set[str] = set()
    for model in service.models():
        schemas = service.schemas(model)
        owned.update(model.operations.values())
        if not model_tools:
            continue
        for op in service.operations(model):

            def run(caller: Caller, args: dict[str, Any], model: Any = model, op: str = op) -> Any:
                return service.call(caller, model, op, args)

            found[f"{model.plural}_{op}"] = _Tool(schemas.args[op], describe(model, op), run)
    for name, target in service.executables().items():
        if name in owned or name in found:
            continue

        def execute(caller: Caller, args: dict[str, Any], name: str = name) -> Any:
            return service.execute(caller, name, args)

        found[name] = _Tool(target.schema, target.description, execute)
    return found


class MCPChannel:
    """An MCP server over a service. Tool calls over HTTP authenticate from their request; over
    stdio, with the credentials the server was launched with.
    """

    def __init__(self, service: GatewayService, title: str, *, model_tools: bool = True) -> None:
        self.service = service
        self.model_tools = model_tools
        self.stdio_credentials = Credentials()
        self.server: Server = Server(
            title.replace(" ", "-").lower(),
            title=title,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )

    async def _list_tools(
        self, ctx: ServerRequestContext, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        listed = tools(self.service, self.model_tools)
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=name,
                    description=tool.description,
                    input_schema=tool.schema.model_json_schema(),
                )
                for name, tool in listed.items()
            ]
        )

    async def _call_tool(
        self, ctx: ServerRequestContext, params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        try:
            tool = tools(self.service, self.model_tools).get(params.name)
            if tool is None:
                raise GatewayError(404, "not_found", f"no tool '{params.name}'")
            if ctx.request is not None:
                caller = self.service.resolve(ctx.request.headers)
            else:
                caller = self.service.auth.resolve(self.stdio_credentials)
            args = validate(tool.schema, params.arguments or {})
            output = await anyio.to_thread.run_sync(tool.run, caller, args)
        except GatewayError as error:
            body = {"status": error.status, **error.body()}
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=json.dumps(body))], is_error=True
            )
        data = to_jsonable_python(output)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(data))],
            structured_content=data,
        )

    async def serve_stdio(self, credentials: Credentials) -> None:
        """Serve over stdin/stdout; every tool call acts with ``credentials``."""
        self.service.auth.resolve(credentials)  # refuse bad launch credentials before serving
        self.stdio_credentials = credentials
        async with stdio_server() as (read, write):
            await self.server.run(read, write, self.server.create_initialization_options())
