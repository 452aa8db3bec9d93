"""The REST channel: FastAPI routes generated from the service's models, nodes and workflows.

Annotations here are evaluated when each route is defined (no postponed annotations), so
FastAPI sees the generated pydantic models and documents them in OpenAPI; mypy cannot follow
such generated types, hence the disabled error codes.
"""
# mypy: disable-error-code="valid-type, name-defined, attr-defined, arg-type"

import contextlib
import json
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from kailash.servers.gateway.change_socket import add_change_route
from kailash.servers.gateway.errors import GatewayError
from kailash.servers.gateway.metrics import Metrics, RequestMetrics
from kailash.servers.gateway.routes import guard, model_routes
from kailash.servers.gateway.schemas import read_json, validation_error
from kailash.servers.gateway.service import Executable, GatewayService


class ExecuteResult(BaseModel):
    run_id: str
    result: dict[str, Any]


class WorkflowResult(BaseModel):
    run_id: str
    results: dict[str, dict[str, Any]]


class StrictJSONRequest(Request):
    """A request whose JSON body is read by ``read_json``: only what a node may take."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = read_json(await self.body())
        return self._json


def _json_body(content_type: str | None) -> bool:
    """Does FastAPI read this body as JSON? (No content type, or a JSON one.)"""
    if not content_type:
        return True
    kind = content_type.split(";")[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


class StrictJSONRoute(APIRoute):
    """Reads JSON bodies with ``read_json`` first, so a value no node may take is a 422.

    FastAPI turns any error but bad syntax while it reads a body into a 400 without a reason;
    reading the body here lets the refusal name the field.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            checked = StrictJSONRequest(request.scope, request.receive)
            if request.method != "GET" and _json_body(checked.headers.get("content-type")):
                body = await checked.body()
                if body:
                    # FastAPI reports bad syntax as a 422 of its own.
                    with contextlib.suppress(json.JSONDecodeError):
                        await checked.json()
            return await handler(checked)

        return strict


def build_app(
    service: GatewayService,
    *,
    title: str,
    description: str = "",
    version: str = "1.0.0",
    auto_generate_endpoints: bool = True,
    serve_operations: bool = True,
    metrics: Metrics | None = None,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    """A FastAPI app serving ``service``: per-model CRUD, node and workflow execution.

    With ``serve_operations=False`` only ``/health`` (and ``/metrics``) are served, for a
    Nexus whose REST channel is off but whose MCP channel shares the server.
    """
    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan)
    app.router.route_class = StrictJSONRoute
    _error_handlers(app)

    @app.get("/health", tags=["service"], summary="Liveness and what is served")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "title": title,
            "models": [m.plural for m in service.models()],
            "workflows": sorted(service.workflows),
        }

    if metrics is not None:
        app.add_middleware(RequestMetrics, metrics=metrics)

        @app.get("/metrics", tags=["service"], summary="Prometheus metrics")
        async def metrics_text() -> Response:
            body, content_type = metrics.render()
            return Response(body, media_type=content_type)

    if not serve_operations:
        return app
    if auto_generate_endpoints:
        for model in service.models():
            model_routes(app, service, model)
    for executable in service.executables().values():
        add_execute_route(app, service, executable)
    add_change_route(app, service)
    return app


def _error_handlers(app: FastAPI) -> None:
    async def refused(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GatewayError)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        unreadable = next((e for e in errors if e.get("type") == "json_invalid"), None)
        if unreadable is not None:
            reason = (unreadable.get("ctx") or {}).get("error", "JSON decode error")
            at = unreadable["loc"][-1]
            message = f"the body is not valid JSON: {reason} (at character {at})"
            return JSONResponse({"error": "validation_error", "message": message}, 422)
        endpoint = getattr(request.scope.get("route"), "endpoint", None)
        if getattr(endpoint, "tagged_body", False):
            # A tagged union's errors name the variant (body.create.data...): drop the tag.
            errors = [{**e, "loc": (e["loc"][0], *e["loc"][2:])} for e in errors]
        error = validation_error(errors, skip=("body", "query", "path"))
        return JSONResponse(error.body(), status_code=422)

    async def unrouted(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        body = {"error": code, "message": f"{request.method} {request.url.path}: {exc.detail}"}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    app.add_exception_handler(GatewayError, refused)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, unrouted)


def add_execute_route(app: FastAPI, service: GatewayService, target: Executable) -> None:
    """``POST /api/workflows/<name>/execute`` for one node type or registered workflow."""
    Body = target.schema
    Executor = guard(service, target.resource, target.operation)
    name = target.name

    def execute(
        body: Body,
        caller: Executor,
    ) -> Any:
        values = body.model_dump(exclude_unset=True)
        values.update(body.model_extra or {})
        return service.execute(caller, name, values)

    app.add_api_route(
        f"/api/workflows/{name}/execute",
        execute,
        methods=["POST"],
        summary=f"Execute {name}",
        description=target.description,
        tags=["workflows"],
        response_model=WorkflowResult if target.workflow is not None else ExecuteResult,
    )
    app.openapi_schema = None  # regenerate /openapi.json with the new route
