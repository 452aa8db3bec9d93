"""One model's REST routes: ``/api/<plural>`` and what hangs off it, per operation served.

Annotations here are evaluated when each route is defined (no postponed annotations), so
FastAPI sees the generated pydantic models of each model and documents them in OpenAPI; mypy
cannot follow such generated types, hence the disabled error codes.
"""
# mypy: disable-error-code="valid-type, name-defined, attr-defined, arg-type"

import inspect
from collections.abc import Callable
from typing import Annotated, Any, Literal, Optional, Union

from fastapi import Depends, FastAPI, Path, Query, Request
from pydantic import BaseModel, Field, create_model

from kailash.servers.gateway.auth import Caller
from kailash.servers.gateway.errors import GatewayError
from kailash.servers.gateway.protocol import BULK_OPERATIONS, ModelInfo
from kailash.servers.gateway.schemas import (
    INT64_MAX,
    defaults_for,
    read_json,
    split_names,
    validate,
)
from kailash.servers.gateway.service import GatewayService

_FILTER_HELP = 'A JSON filter, e.g. {"price": 10}.'
_SORT_HELP = 'A JSON sort ([{"price": -1}]) or comma-separated names, "-" for descending.'
_DELETED_HELP = "Include soft-deleted records."
_WHEN_HELP = "A date (the whole day, for end) or an ISO-8601 datetime."


def guard(service: GatewayService, resource: str, operation: str | None) -> Any:
    """The caller, authenticated (and, given an operation, authorised) before the body is read."""

    async def caller(request: Request) -> Caller:
        found = service.resolve(request.headers)
        if operation is not None:
            service.authorize(found, resource, operation)
        return found

    return Annotated[Caller, Depends(caller)]


def _json_query(name: str, text: str) -> Any:
    try:
        return read_json(text, where=name)
    except ValueError as exc:
        raise GatewayError(
            422, "validation_error", f"'{name}' is not valid JSON: {exc}", field=name
        ) from None


def _sort_query(text: str) -> Any:
    if text.lstrip().startswith(("[", "{")):
        return _json_query("sort", text)
    return split_names(text)


def _query_names(endpoint: Callable[..., Any]) -> frozenset[str]:
    """The query parameters of a route: those of its endpoint that have defaults."""
    parameters = inspect.signature(endpoint).parameters.values()
    return frozenset(p.name for p in parameters if p.default is not inspect.Parameter.empty)


def _known_query(request: Request, known: frozenset[str]) -> None:
    """Refuse query parameters the route does not take (a misspelt filter would list all)."""
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise GatewayError(
            422,
            "validation_error",
            f"unknown query parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
            field=unknown[0],
        )


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class _Routes:
    """What every route of one model needs: its schemas, its guards, one way to call it."""

    def __init__(self, app: FastAPI, service: GatewayService, model: ModelInfo) -> None:
        self.app = app
        self.service = service
        self.model = model
        self.schemas = service.schemas(model)
        self.ops = service.operations(model)
        self.base = f"/api/{model.plural}"
        self.item = f"{self.base}/{{id}}"
        self.Pk = Annotated[
            self.schemas.pk_type, Path(description=f"The {model.name}'s {model.primary_key}")
        ]

    def guard(self, operation: str | None) -> Any:
        return guard(self.service, self.model.name, operation)

    def call(self, caller: Caller, op: str, params: dict[str, Any]) -> Any:
        return self.service.call(caller, self.model, op, params)

    def add(self, path: str, method: str, endpoint: Any, summary: str, **extra: Any) -> None:
        self.app.add_api_route(
            path, endpoint, methods=[method], summary=summary, tags=[self.model.name], **extra
        )


def model_routes(app: FastAPI, service: GatewayService, model: ModelInfo) -> None:
    """Every route of ``model`` whose operation the service serves."""
    routes = _Routes(app, service, model)
    for add in (_list, _create, _read, _update, _delete, _restore, _bulk, _aggregate, _audit):
        add(routes)


def _list(r: _Routes) -> None:
    if "list" not in r.ops:
        return
    ListArgs = r.schemas.args["list"]
    Lister = r.guard("list")

    def list_records(
        request: Request,
        caller: Lister,
        filter: Annotated[Optional[str], Query(description=_FILTER_HELP)] = None,
        sort: Annotated[Optional[str], Query(description=_SORT_HELP)] = None,
        limit: Annotated[Optional[int], Query(ge=0, le=INT64_MAX)] = None,
        offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
        fields: Annotated[Optional[str], Query(description="Comma-separated names.")] = None,
        count_total: bool = False,
        include_deleted: Annotated[Optional[bool], Query(description=_DELETED_HELP)] = None,
        after: Annotated[Optional[str], Query(description="A page's next_cursor.")] = None,
    ) -> Any:
        _known_query(request, list_query)
        raw: dict[str, Any] = {"offset": offset, "count_total": count_total}
        raw.update(_given(limit=limit, include_deleted=include_deleted, after=after))
        if filter is not None:
            raw["filter"] = _json_query("filter", filter)
        if sort is not None:
            raw["sort"] = _sort_query(sort)
        if fields:
            raw["fields"] = split_names(fields)
        return r.call(caller, "list", validate(ListArgs, raw))

    list_query = _query_names(list_records)

    def query_records(body: ListArgs, caller: Lister) -> Any:
        return r.call(caller, "list", body.model_dump(exclude_unset=True))

    page = {"response_model": r.schemas.page, "response_model_exclude_unset": True}
    r.add(r.base, "GET", list_records, f"List {r.model.plural}", **page)
    r.add(f"{r.base}/query", "POST", query_records, f"Query {r.model.plural} (JSON body)", **page)


def _create(r: _Routes) -> None:
    if "create" not in r.ops:
        return
    Create = r.schemas.create
    Creator = r.guard("create")

    def create_record(body: Create, caller: Creator) -> Any:
        return r.call(caller, "create", body.model_dump(exclude_unset=True))

    r.add(
        r.base,
        "POST",
        create_record,
        f"Create a {r.model.name}",
        status_code=201,
        response_model=r.schemas.record,
    )


def _read(r: _Routes) -> None:
    if "read" not in r.ops:
        return
    Pk, Reader = r.Pk, r.guard("read")

    def read_record(
        request: Request,
        id: Pk,
        caller: Reader,
        include_deleted: Annotated[Optional[bool], Query(description=_DELETED_HELP)] = None,
    ) -> Any:
        _known_query(request, read_query)
        return r.call(caller, "read", {"id": id, **_given(include_deleted=include_deleted)})

    read_query = _query_names(read_record)
    r.add(r.item, "GET", read_record, f"Get a {r.model.name}", response_model=r.schemas.record)


def _update(r: _Routes) -> None:
    if "update" not in r.ops:
        return
    Pk, Updater = r.Pk, r.guard("update")
    Replace, Patch = r.schemas.replace, r.schemas.patch
    defaults = defaults_for(r.model)

    def replace_record(id: Pk, body: Replace, caller: Updater) -> Any:
        given = body.model_dump(exclude_unset=True)
        return r.call(caller, "update", {**defaults, **given, "id": id})

    def patch_record(id: Pk, body: Patch, caller: Updater) -> Any:
        return r.call(caller, "update", {**body.model_dump(exclude_unset=True), "id": id})

    name, record = r.model.name, r.schemas.record
    r.add(r.item, "PUT", replace_record, f"Replace a {name}", response_model=record)
    r.add(r.item, "PATCH", patch_record, f"Change fields of a {name}", response_model=record)


def _delete(r: _Routes) -> None:
    summary = f"Delete a {r.model.name} (soft, where the model keeps deleted records)"
    _by_id(r, "delete", "DELETE", r.item, summary, r.schemas.deleted)


def _restore(r: _Routes) -> None:
    summary = f"Bring back a soft-deleted {r.model.name}"
    _by_id(r, "restore", "POST", f"{r.item}/restore", summary, r.schemas.record)


def _by_id(r: _Routes, op: str, method: str, path: str, summary: str, response: Any) -> None:
    """A route whose only argument is the record's id."""
    if op not in r.ops:
        return
    Pk, Allowed = r.Pk, r.guard(op)

    def endpoint(id: Pk, caller: Allowed) -> Any:
        return r.call(caller, op, {"id": id})

    endpoint.__name__ = f"{op}_record"  # names the operation in OpenAPI
    r.add(path, method, endpoint, summary, response_model=response)


def _bulk(r: _Routes) -> None:
    bulk = [op for op in BULK_OPERATIONS if op in r.ops]
    if not bulk:
        return
    Bulk = _bulk_body(r.model, {op: r.schemas.args[op] for op in bulk})
    Authenticated = r.guard(None)  # the body names the operation, which service.call authorises

    def bulk_records(body: Bulk, caller: Authenticated) -> Any:
        values = body.model_dump(exclude_unset=True)
        op = "bulk_" + values.pop("operation")
        return r.call(caller, op, values)

    bulk_records.tagged_body = len(bulk) > 1
    names = ", ".join(op.removeprefix("bulk_") for op in bulk)
    summary = f"Bulk {names} of {r.model.plural}"
    r.add(f"{r.base}/bulk", "POST", bulk_records, summary, response_model=dict[str, Any])


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


def _aggregate(r: _Routes) -> None:
    if "aggregate" not in r.ops:
        return
    AggregateArgs = r.schemas.args["aggregate"]
    Aggregator = r.guard("aggregate")

    def aggregate_records(body: AggregateArgs, caller: Aggregator) -> Any:
        return r.call(caller, "aggregate", body.model_dump(exclude_unset=True))

    summary = f"Aggregate {r.model.plural}"
    r.add(f"{r.base}/aggregate", "POST", aggregate_records, summary, response_model=dict[str, Any])


def _audit(r: _Routes) -> None:
    if "audit" not in r.ops:
        return
    AuditArgs = r.schemas.args["audit"]
    Pk, Auditor = r.Pk, r.guard("audit")
    trail = {"response_model": r.schemas.audit_page, "response_model_exclude_unset": True}

    def record_trail(
        request: Request,
        id: Pk,
        caller: Auditor,
        action_type: Annotated[Optional[str], Query(description="Comma-separated actions.")] = None,
        start: Annotated[Optional[str], Query(description=_WHEN_HELP)] = None,
        end: Annotated[Optional[str], Query(description=_WHEN_HELP)] = None,
        limit: Annotated[Optional[int], Query(ge=0, le=INT64_MAX)] = None,
        offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
        count_total: bool = False,
    ) -> Any:
        _known_query(request, trail_query)
        raw: dict[str, Any] = {"record_id": id, "offset": offset, "count_total": count_total}
        raw.update(_given(limit=limit))
        if action_type is not None:
            raw["action_type"] = split_names(action_type)
        if start is not None or end is not None:
            raw["date_range"] = _given(start=start, end=end)
        return r.call(caller, "audit", validate(AuditArgs, raw))

    trail_query = _query_names(record_trail)

    def model_trail(body: AuditArgs, caller: Auditor) -> Any:
        return r.call(caller, "audit", body.model_dump(exclude_unset=True))

    name, plural = r.model.name, r.model.plural
    r.add(f"{r.item}/audit", "GET", record_trail, f"The audit trail of a {name}", **trail)
    r.add(f"{r.base}/audit", "POST", model_trail, f"The audit trail of {plural} (query)", **trail)
