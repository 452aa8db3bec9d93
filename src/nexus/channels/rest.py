"""The REST channel: the gateway's routes, with the MCP channel's HTTP endpoint at ``/mcp``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.routing import Route

from kailash.servers.gateway.rest import build_app

if TYPE_CHECKING:
    from nexus.app import Nexus


def build_api(nexus: Nexus) -> FastAPI:
    """The ASGI app Nexus serves."""
    if not nexus.enable_mcp:
        return build_app(
            nexus.service,
            title=nexus.title,
            auto_generate_endpoints=nexus.auto_generate_endpoints,
            serve_operations=nexus.enable_api,
            metrics=nexus.metrics,
        )
    from mcp.server.streamable_http_manager import (
        StreamableHTTPASGIApp,
        StreamableHTTPSessionManager,
    )

    # Stateless: each POST carries a whole exchange, so any worker can answer it and no session
    # outlives its request; tool calls authenticate from that request's headers.
    manager = StreamableHTTPSessionManager(app=nexus.mcp.server, stateless=True, json_response=True)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with manager.run():
            yield

    app = build_app(
        nexus.service,
        title=nexus.title,
        auto_generate_endpoints=nexus.auto_generate_endpoints,
        serve_operations=nexus.enable_api,
        metrics=nexus.metrics,
        lifespan=lifespan,
    )
    app.router.routes.append(Route("/mcp", endpoint=StreamableHTTPASGIApp(manager)))
    return app
