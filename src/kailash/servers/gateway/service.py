"""The operations every channel serves: authorise, run the node or workflow, explain errors.

REST, MCP and the CLI validate their input with the generated schemas and then call
``GatewayService.call`` (a model operation) or ``GatewayService.execute`` (a node or a
registered workflow), so authentication, RBAC, tenancy and error mapping are one code path.
"""

from __future__ import annotations

import logging
import threading
import time
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

from kailash.errors import NodeExecutionError, WorkflowValidationError
from kailash.nodes.base import Node
from kailash.runtime.local import LocalRuntime, Results
from kailash.servers.gateway.auth import Authenticator, Caller
from kailash.servers.gateway.errors import STATUS, GatewayConfigurationError, GatewayError
from kailash.servers.gateway.metrics import Metrics
from kailash.servers.gateway.protocol import (
    BULK_OPERATIONS,
    EXECUTE,
    OPERATIONS,
    DataSource,
    ModelInfo,
)
from kailash.servers.gateway.schemas import ModelSchemas, node_arguments, workflow_inputs
from kailash.servers.gateway.templates import RegisteredWorkflow
from kailash.workflow.builder import WorkflowBuilder
from kailash.workflow.graph import Workflow

log = logging.getLogger("kailash.gateway")

_CODES = {
    "invalid": "validation_error",
    "not_found": "not_found",
    "conflict": "conflict",
    "forbidden": "forbidden",
}

_DESCRIPTIONS = {
    "create": "Create a {name}",
    "read": "Get a {name} by {pk}",
    "update": "Change fields of a {name} given its {pk}",
    "delete": "Delete a {name} by {pk}",
    "restore": "Bring back a soft-deleted {name} by {pk}",
    "upsert": "Insert a {name}, or update the one with the same unique key",
    "list": "List {plural} with a filter, sort, limit, offset and field projection",
    "count": "Count {plural} matching a filter",
    "aggregate": "Group and aggregate {plural}",
    "bulk_create": "Create many {plural} at once",
    "bulk_update": "Update the {plural} matching a filter",
    "bulk_delete": "Delete the {plural} matching a filter",
    "bulk_upsert": "Insert or update many {plural} by a unique key",
    "audit": "The audit trail of {plural}: who changed what, oldest first",
}


def describe(model: ModelInfo, operation: str) -> str:
    """One line saying what an operation of ``model`` does."""
    text = _DESCRIPTIONS[operation]
    return text.format(name=model.name, plural=model.plural, pk=model.primary_key) + "."


@dataclass(frozen=True, slots=True)
class Executable:
    """A node type or registered workflow served at ``/api/workflows/<name>/execute``."""

    name: str
    schema: Any  # the pydantic model of its request body
    resource: str  # what RBAC grants name: the model, or the node / workflow itself
    operation: str
    models: tuple[ModelInfo, ...]  # models it acts on (their tenancy applies)
    node: type[Node] | None = None
    workflow: RegisteredWorkflow | None = None
    description: str = ""


@dataclass(slots=True)
class _Catalog:
    models: dict[str, ModelInfo]  # by plural
    schemas: dict[str, ModelSchemas]  # by model name
    operations: dict[str, list[str]]  # model name -> exposed operations
    executables: dict[str, Executable]


class GatewayService:
    """Serves a data source's models and nodes, and registered workflows, to every channel."""

    def __init__(
        self,
        source: DataSource | None,
        auth: Authenticator,
        *,
        expose_bulk: bool = True,
        expose_analytics: bool = True,
        metrics: Metrics | None = None,
    ) -> None:
        self.source = source
        self.auth = auth
        self.expose_bulk = expose_bulk
        self.expose_analytics = expose_analytics
        self.metrics = metrics
        self.runtime = LocalRuntime()
        self.workflows: dict[str, RegisteredWorkflow] = {}
        self._catalog: _Catalog | None = None
        self._lock = threading.Lock()

    # -- what is served -------------------------------------------------------------------

    def register(
        self,
        name: str,
        workflow: WorkflowBuilder | Workflow,
        inputs: Mapping[str, str | Sequence[str]] | None = None,
    ) -> RegisteredWorkflow:
        """Serve ``workflow`` under ``name`` on every channel.

        Callers give its ``{{placeholders}}`` and the node parameters ``inputs`` declares
        (input name -> ``"node_id.parameter"``), nothing else.
        """
        _check_name(name, self.source)
        types = _SourceTypes(self.source, self.catalog)
        registered = RegisteredWorkflow(name, workflow, inputs=inputs, types=types)
        with self._lock:
            self.workflows[name] = registered
            self._catalog = None
        return registered

    @property
    def catalog(self) -> _Catalog:
        found = self._catalog
        if found is None:
            with self._lock:
                found = self._catalog = self._catalog or self._build_catalog()
        return found

    def _build_catalog(self) -> _Catalog:
        nodes: Mapping[str, type[Node]] = self.source.nodes if self.source is not None else {}
        models = list(self.source.describe_models()) if self.source is not None else []
        catalog = _Catalog({}, {}, {}, {})
        owned: dict[str, ModelInfo] = {}  # node type -> the model it acts on
        for model in models:
            catalog.models[model.plural] = model
            schemas = catalog.schemas[model.name] = ModelSchemas(model, nodes)
            exposed = [op for op in OPERATIONS if op in schemas.args and self._exposes(op)]
            catalog.operations[model.name] = exposed
            for op, node_type in model.operations.items():
                owned[node_type] = model
                if op in exposed:
                    catalog.executables[node_type] = Executable(
                        node_type,
                        schemas.args[op],
                        model.name,
                        op,
                        (model,),
                        node=nodes[node_type],
                        description=f"{describe(model, op)} ({node_type})",
                    )
        for name, node in nodes.items():
            if name not in owned and node.servable:
                catalog.executables[name] = Executable(
                    name,
                    node_arguments(name, node),
                    name,
                    EXECUTE,
                    (),
                    node=node,
                    description=(node.__doc__ or name).strip().splitlines()[0],
                )
        for name, registered in self.workflows.items():
            _check_name(name, self.source)
            touched = {
                owned[c.node_type()].name: owned[c.node_type()]
                for c in registered.node_classes
                if c.node_type() in owned
            }
            catalog.executables[name] = Executable(
                name,
                workflow_inputs(name, registered.inputs, registered.optional),
                name,
                EXECUTE,
                tuple(touched.values()),
                workflow=registered,
                description=f"workflow {name}",
            )
        return catalog

    def _exposes(self, op: str) -> bool:
        if op in BULK_OPERATIONS:
            return self.expose_bulk
        if op == "aggregate":
            return self.expose_analytics
        return True

    def models(self) -> list[ModelInfo]:
        return list(self.catalog.models.values())

    def schemas(self, model: ModelInfo) -> ModelSchemas:
        return self.catalog.schemas[model.name]

    def operations(self, model: ModelInfo) -> list[str]:
        """The operations of ``model`` served here, in OPERATIONS order."""
        return self.catalog.operations[model.name]

    def executables(self) -> dict[str, Executable]:
        return self.catalog.executables

    def executable(self, name: str) -> Executable:
        found = self.catalog.executables.get(name)
        if found is None:
            known = ", ".join(sorted(self.catalog.executables)) or "(none)"
            raise GatewayError(
                404, "not_found", f"no node type or workflow '{name}'; known: {known}"
            )
        return found

    # -- calls ----------------------------------------------------------------------------

    def resolve(self, headers: Mapping[str, str]) -> Caller:
        """Authenticate the caller behind HTTP request headers."""
        return self.auth.resolve(self.auth.credentials(headers))

    def authorize(self, caller: Caller, resource: str, operation: str) -> None:
        self.auth.authorize(caller, resource, operation)

    def call(
        self, caller: Caller, model: ModelInfo, operation: str, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Run one model operation with checked ``params``; return the node's output."""
        if operation not in self.operations(model):
            served = ", ".join(self.operations(model))
            raise GatewayError(
                404, "not_found", f"{model.name} has no operation '{operation}' here; {served}"
            )
        self.authorize(caller, model.name, operation)
        self.require_tenant(caller, (model,))
        node = self.catalog.executables[model.operations[operation]].node
        assert node is not None
        results, _ = self._run(
            caller, lambda: _one_node(node, operation, params), model.name, operation
        )
        return results[operation]

    def execute(self, caller: Caller, name: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Run a node type or registered workflow with checked ``inputs``."""
        target = self.executable(name)
        self.authorize(caller, target.resource, target.operation)
        self.require_tenant(caller, target.models)
        if target.workflow is not None:
            registered = target.workflow
            results, run_id = self._run(
                caller, lambda: registered.prepare(inputs), target.resource, target.operation
            )
            return {"run_id": run_id, "results": results}
        node = target.node
        assert node is not None
        results, run_id = self._run(
            caller, lambda: _one_node(node, "node", inputs), target.resource, target.operation
        )
        return {"run_id": run_id, "result": results["node"]}

    def _run(
        self,
        caller: Caller,
        build: Callable[[], tuple[Workflow, dict[str, Any]]],
        resource: str,
        operation: str,
    ) -> tuple[Results, str]:
        """Build and run a workflow, with the caller's tenant for the nodes that take one."""
        start = time.perf_counter()
        outcome = "error"
        try:
            workflow, parameters = build()
            if caller.tenant_id is not None and _takes("tenant_id", workflow.nodes.values()):
                parameters["tenant_id"] = caller.tenant_id
            subject = caller.principal.subject
            if subject is not None and _takes("actor", workflow.nodes.values()):
                parameters["actor"] = subject
            results = self.runtime.execute(workflow, parameters or None)
            outcome = "ok"
            return results
        except Exception as exc:
            error = self.explain(exc)
            outcome = "refused" if error.status < 500 else "error"
            raise error from exc
        finally:
            if self.metrics is not None:
                self.metrics.observe_operation(
                    resource, operation, outcome, time.perf_counter() - start
                )

    def require_tenant(self, caller: Caller, models: Iterable[ModelInfo]) -> None:
        scoped = [m.name for m in models if m.tenant_scoped]
        if scoped and caller.tenant_id is None:
            raise GatewayError(
                400,
                "tenant_required",
                f"{', '.join(scoped)} is multi-tenant: send the {self.auth.tenant_header} header "
                "or use a credential bound to a tenant",
            )

    def explain(self, exc: BaseException) -> GatewayError:
        """The caller's view of an error raised while building or running a workflow."""
        if isinstance(exc, GatewayError):
            return exc
        cause = exc.cause if isinstance(exc, NodeExecutionError) else exc
        problem = self.source.explain_error(cause) if self.source is not None else None
        if problem is not None:
            return GatewayError(
                STATUS[problem.kind],
                _CODES[problem.kind],
                problem.message,
                field=problem.field,
                details=dict(problem.details) if problem.details else None,
            )
        if isinstance(cause, WorkflowValidationError):
            return GatewayError(422, "validation_error", str(cause))
        log.error("gateway: an operation failed", exc_info=exc)
        return GatewayError(
            500, "internal_error", "the operation failed on the server; its log has the details"
        )


def _check_name(name: str, source: DataSource | None) -> None:
    if source is not None and name in source.nodes:
        raise GatewayConfigurationError(
            f"workflow '{name}' has the name of a node type of the data source; rename it"
        )


def _one_node(
    node: type[Node], node_id: str, params: Mapping[str, Any]
) -> tuple[Workflow, dict[str, Any]]:
    builder = WorkflowBuilder()
    builder.add_node(node, node_id, dict(params))
    return builder.build(), {}


def _takes(parameter: str, nodes: Iterable[Node]) -> bool:
    return any(parameter in type(node).parameters for node in nodes)


class _SourceTypes:
    """Parameter and field types of the data source's nodes, for registered workflows' inputs.

    A model operation's parameters are typed by the gateway's request schemas (its nodes may
    declare ``object``), so an input standing for ``limit`` is an int, one for a filter a dict.
    """

    def __init__(self, source: DataSource | None, catalog: _Catalog) -> None:
        nodes: Mapping[str, type[Node]] = source.nodes if source is not None else {}
        self._ops: dict[type[Node], tuple[ModelInfo, Any]] = {}
        for model in catalog.models.values():
            args = catalog.schemas[model.name].args
            for op, node_type in model.operations.items():
                node = nodes.get(node_type)
                if node is not None and op in args:
                    self._ops[node] = (model, args[op])

    def parameter(self, node: type[Node], name: str) -> Any:
        declared = node.parameters.get(name)
        kind = declared.type if declared is not None else object
        owned = self._ops.get(node)
        if kind in (object, Any) and owned is not None:
            field = owned[1].model_fields.get(name)
            if field is not None:
                kind = _without_none(field.annotation)
        return kind

    def fields(self, node: type[Node]) -> Mapping[str, Any] | None:
        owned = self._ops.get(node)
        return None if owned is None else {f.name: f.type for f in owned[0].fields}


def _without_none(kind: Any) -> Any:
    """``Optional[X]`` -> ``X``: an input a caller gives is a value, not "no value"."""
    if get_origin(kind) in (Union, types.UnionType):
        kept = [arg for arg in get_args(kind) if arg is not type(None)]
        if len(kept) == 1:
            return kept[0]
    return kind
