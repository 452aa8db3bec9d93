"""The REST channel: FastAPI routes generated from the service's models, nodes and workflows.

Annotations here are evaluated when each route is defined (no postponed annotations), so
FastAPI sees the generated pydantic models of each model and documents them in OpenAPI; mypy
cannot follow such generated types, hence the disabled error codes.
"""
# mypy: disable-error-code="valid-type, name-defined, attr-defined, arg-type"

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any, Literal, Optional, Union

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, create_model

from kailash.servers.gateway.auth import Caller
from kailash.servers.gateway.errors import GatewayError
from kailash.servers.gateway.metrics import Metrics, RequestMetrics
from kailash.servers.gateway.protocol import BULK_OPERATIONS, ModelInfo
from kailash.servers.gateway.schemas import defaults_for, split_names, validate, validation_error
from kailash.servers.gateway.service import Executable, GatewayService

_FILTER_HELP = 'A JSON filter, e.g. {"price": 10}.'
_SORT_HELP = 'A JSON sort ([{"price": -1}]) or comma-separated names, "-" for descending.'


class ExecuteResult(BaseModel):
    run_id: str
    result: dict[str, Any]


class WorkflowResult(BaseModel):
    run_id: str
    results: dict[str, dict[str, Any]]


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
            _model_routes(app, service, model)
    for executable in service.executables().values():
        add_execute_route(app, service, executable)
    return app


def _error_handlers(app: FastAPI) -> None:
    async def refused(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GatewayError)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        endpoint = getattr(request.scope.get("route"), "endpoint", None)
        if getattr(endpoint, "tagged_body", False):
            # A tagged union's errors name the variant (body.create.data...): drop the tag.
            errors = [{**e, "loc": (e["loc"][0], *e["loc"][2:])} for e in errors]
        error = validation_error(errors, skip=("body", "query", "path"))
        return JSONResponse(error.body(), status_code=422)

    app.add_exception_handler(GatewayError, refused)
    app.add_exception_handler(RequestValidationError, invalid)


def _guard(service: GatewayService, resource: str, operation: str | None) -> Any:
    """The caller, authenticated (and, given an operation, authorised) before the body is read."""

    async def caller(request: Request) -> Caller:
        found = service.resolve(request.headers)
        if operation is not None:
            service.authorize(found, resource, operation)
        return found

    return Annotated[Caller, Depends(caller)]


def _json_query(name: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise GatewayError(
            422, "validation_error", f"'{name}' is not valid JSON: {exc}", field=name
        ) from None


def _sort_query(text: str) -> Any:
    if text.lstrip().startswith(("[", "{")):
        return _json_query("sort", text)
    return split_names(text)


def _model_routes(app: FastAPI, service: GatewayService, model: ModelInfo) -> None:
    schemas = service.schemas(model)
    ops = service.operations(model)
    base = f"/api/{model.plural}"
    item = f"{base}/{{id}}"
    tags: list[str | Any] = [model.name]
    Pk = Annotated[schemas.pk_type, Path(description=f"The {model.name}'s {model.primary_key}")]

    Lister = _guard(service, model.name, "list")
    Creator = _guard(service, model.name, "create")
    Reader = _guard(service, model.name, "read")
    Updater = _guard(service, model.name, "update")
    Deleter = _guard(service, model.name, "delete")
    Authenticated = _guard(service, model.name, None)  # bulk: the body names the operation

    def call(caller: Caller, op: str, params: dict[str, Any]) -> dict[str, Any]:
        return service.call(caller, model, op, params)

    def route(path: str, method: str, endpoint: Any, summary: str, **extra: Any) -> None:
        app.add_api_route(path, endpoint, methods=[method], summary=summary, tags=tags, **extra)

    if "list" in ops:
        ListArgs = schemas.args["list"]

        def list_records(
            caller: Lister,
            filter: Annotated[Optional[str], Query(description=_FILTER_HELP)] = None,
            sort: Annotated[Optional[str], Query(description=_SORT_HELP)] = None,
            limit: Annotated[Optional[int], Query(ge=0)] = None,
            offset: Annotated[int, Query(ge=0)] = 0,
            fields: Annotated[Optional[str], Query(description="Comma-separated names.")] = None,
            count_total: bool = False,
        ) -> Any:
            raw: dict[str, Any] = {"offset": offset, "count_total": count_total}
            if filter is not None:
                raw["filter"] = _json_query("filter", filter)
            if sort is not None:
                raw["sort"] = _sort_query(sort)
            if limit is not None:
                raw["limit"] = limit
            if fields:
                raw["fields"] = split_names(fields)
            return call(caller, "list", validate(ListArgs, raw))

        def query_records(
            body: ListArgs,
            caller: Lister,
        ) -> Any:
            return call(caller, "list", body.model_dump(exclude_unset=True))

        page = {"response_model": schemas.page, "response_model_exclude_unset": True}
        route(base, "GET", list_records, f"List {model.plural}", **page)
        route(f"{base}/query", "POST", query_records, f"Query {model.plural} (JSON body)", **page)

    if "create" in ops:
        Create = schemas.create

        def create_record(
            body: Create,
            caller: Creator,
        ) -> Any:
            return call(caller, "create", body.model_dump(exclude_unset=True))

        route(
            base,
            "POST",
            create_record,
            f"Create a {model.name}",
            status_code=201,
            response_model=schemas.record,
        )

    if "read" in ops:

        def read_record(id: Pk, caller: Reader) -> Any:
            return call(caller, "read", {"id": id})

        route(item, "GET", read_record, f"Get a {model.name}", response_model=schemas.record)

    if "update" in ops:
        Replace, Patch = schemas.replace, schemas.patch
        defaults = defaults_for(model)

        def replace_record(
            id: Pk,
            body: Replace,
            caller: Updater,
        ) -> Any:
            given = body.model_dump(exclude_unset=True)
            return call(caller, "update", {**defaults, **given, "id": id})

        def patch_record(
            id: Pk,
            body: Patch,
            caller: Updater,
        ) -> Any:
            return call(caller, "update", {**body.model_dump(exclude_unset=True), "id": id})

        route(item, "PUT", replace_record, f"Replace a {model.name}", response_model=schemas.record)
        route(
            item,
            "PATCH",
            patch_record,
            f"Change fields of a {model.name}",
            response_model=schemas.record,
        )

    if "delete" in ops:

        def delete_record(id: Pk, caller: Deleter) -> Any:
            return call(caller, "delete", {"id": id})

        route(
            item, "DELETE", delete_record, f"Delete a {model.name}", response_model=schemas.deleted
        )

    bulk = [op for op in BULK_OPERATIONS if op in ops]
    if bulk:
        Bulk = _bulk_body(model, {op: schemas.args[op] for op in bulk})

        def bulk_records(
            body: Bulk,
            caller: Authenticated,
        ) -> Any:
            values = body.model_dump(exclude_unset=True)
            op = "bulk_" + values.pop("operation")
            return call(caller, op, values)

        bulk_records.tagged_body = len(bulk) > 1
        names = ", ".join(op.removeprefix("bulk_") for op in bulk)
        route(
            f"{base}/bulk",
            "POST",
            bulk_records,
            f"Bulk {names} of {model.plural}",
            response_model=dict[str, Any],
        )

    if "aggregate" in ops:
        AggregateArgs = schemas.args["aggregate"]
        Aggregator = _guard(service, model.name, "aggregate")

        def aggregate_records(
            body: AggregateArgs,
            caller: Aggregator,
        ) -> Any:
            return call(caller, "aggregate", body.model_dump(exclude_unset=True))

        route(
            f"{base}/aggregate",
            "POST",
            aggregate_records,
            f"Aggregate {model.plural}",
            response_model=dict[str, Any],
        )


def _bulk_body(model: ModelInfo, args: dict[str, type[BaseModel]]) -> Any:
    """One body for every bulk operation, told apart by its ``operation`` member."""
    variants = []
    for op, schema in args.items():
        short = op.removeprefix("bulk_")
        variants.append(
            create_model(
                f"{model.name}Bulk{short.title()}",
                __base__=schema,
                operation=(Literal[short], ...),
            )
        )
    if len(variants) == 1:
        return variants[0]
    return Annotated[Union[tuple(variants)], Field(discriminator="operation")]


def add_execute_route(app: FastAPI, service: GatewayService, target: Executable) -> None:
    """``POST /api/workflows/<name>/execute`` for one node type or registered workflow."""
    Body = target.schema
    Executor = _guard(service, target.resource, target.operation)
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
