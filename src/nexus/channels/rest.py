"""The REST channel: the gateway's routes, with the MCP channel's HTTP endpoint at ``/mcp``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.routing import Route

from kailash.servers.gateway.rest import build_app

if TYPE_CHECKING:
    from kailash.servers.gateway.metrics import Metrics
    from kailash.servers.gateway.service import GatewayService


def build_api(
    service: GatewayService,
    *,
    title: str,
    auto_generate_endpoints: bool,
    serve_operations: bool,
    metrics: Metrics | None,
    mcp_server: Any = None,
) -> FastAPI:
    """The ASGI app Nexus serves: the gateway's routes, and ``mcp_server`` at /mcp if given."""
    options: dict[str, Any] = {
        "title": title,
        "auto_generate_endpoints": auto_generate_endpoints,
        "serve_operations": serve_operations,
        "metrics": metrics,
    }
    if mcp_server is None:
        return build_app(service, **options)
    from mcp.server.streamable_http_manager import (
        StreamableHTTPASGIApp,
        StreamableHTTPSessionManager,
    )

    # Stateless: each POST carries a whole exchange, so any worker can answer it and no session
    # outlives its request; tool calls authenticate from that request's headers.
    manager = StreamableHTTPSessionManager(app=mcp_server, stateless=True, json_response=True)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with manager.run():
            yield

    app = build_app(service, **options, lifespan=lifespan)
    app.router.routes.append(Route("/mcp", endpoint=StreamableHTTPASGIApp(manager)))
    return app
