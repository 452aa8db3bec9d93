"""The steps of a saga or two-phase commit: what each one runs, with what, and how it is retried."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from dataflow.errors import TransactionError
from dataflow.models.types import Refused
from dataflow.nodes import crud
from dataflow.nodes.base import check_count
from kailash.errors import KailashError, NodeExecutionError, WorkflowValidationError
from kailash.nodes.base import Node
from kailash.nodes.registry import NAMESPACE_PARAM
from kailash.runtime.local import LocalRuntime
from kailash.workflow.builder import WorkflowBuilder
from kailash.workflow.graph import Connection, Workflow

if TYPE_CHECKING:
    from dataflow.store import Store

log = logging.getLogger("dataflow.transactions")

STEP_KEYS = ("name", "node", "workflow", "params", "connections", "compensation", "retry_attempts")
#: The source name under which steps' connections reach the manager node's ``data``.
DATA = "data"
#: What a compensation node receives: the step's inputs and its output (None if unknown).
COMPENSATION_PARAMS = ("step_input", "step_output")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Step:
    """One step: a node type or a registered workflow, its params and where its inputs come from."""

    name: str
    node: str | None = None
    workflow: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    #: Parameter -> ``"source.dotted.path"``; the source is an earlier step's name or ``data``.
    connections: dict[str, str] = field(default_factory=dict)
    #: The node type that undoes the step; None when the step changes nothing to undo.
    compensation: str | None = None
    #: Whether the step named its compensation at all (None included): sagas insist on it.
    has_compensation: bool = False
    retry_attempts: int | None = None
    #: With a generated compensation: the operation it undoes (``Create``, ``Update`` or
    #: ``Delete``; see dataflow.transactions.undo). None for a node taking step_input.
    undo: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Step:
        return cls(**data)

    def inputs(self, outputs: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        """The step's params with its connections filled from earlier outputs and ``data``."""
        inputs = dict(self.params)
        for param, source in self.connections.items():
            origin, _, path = source.partition(".")
            given = data if origin == DATA else outputs[origin]
            conn = Connection(origin, path or "result", self.name, param)
            inputs[param] = conn.pick(given)
        return inputs

    def run(self, db: Store, inputs: dict[str, Any]) -> dict[str, Any]:
        """Run the node (or workflow) once; a workflow's output is its results by node id."""
        if self.workflow is not None:
            results, _ = LocalRuntime().execute(db.workflows[self.workflow], inputs)
            return results
        assert self.node is not None
        node = db.node_type(self.node, self.params.get(NAMESPACE_PARAM))
        return run_node(node, self.name, inputs)

    def node_classes(self, db: Store) -> list[type[Node]]:
        """The node classes the step runs."""
        if self.workflow is not None:
            return [type(s.node) for s in db.workflows[self.workflow].steps]
        assert self.node is not None
        return [db.node_type(self.node, self.params.get(NAMESPACE_PARAM))]


def run_node(cls: type[Node], node_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Run one node as a workflow of its own, so it is checked like any node of a workflow."""
    builder = WorkflowBuilder()
    builder.add_node(cls, node_id, inputs)
    results, _ = LocalRuntime().execute(builder.build())
    return results[node_id]


def cause(exc: BaseException) -> BaseException:
    """The node's own error inside a workflow's NodeExecutionError."""
    return exc.cause if isinstance(exc, NodeExecutionError) else exc


def with_retries(
    work: Callable[[int], T],
    *,
    retries: int,
    backoff: float,
    deadline: float | None,
    what: str,
) -> T:
    """Call ``work(attempt)`` until it succeeds, ``retries`` more times at most, backing off.

    The wait doubles each time (``backoff``, 2 x ``backoff``, ...) and never passes the
    deadline. Refused input and transaction errors (a timeout, a value the log cannot keep) are
    not retried: they would fail the same way.
    """
    attempt = 0
    while True:
        try:
            return work(attempt)
        except Exception as exc:
            error = cause(exc)
            if attempt >= retries or isinstance(error, WorkflowValidationError | TransactionError):
                raise
            delay = backoff * 2**attempt
            if deadline is not None:
                delay = min(delay, deadline - time.monotonic())
                if delay <= 0:
                    raise
            log.info(
                "%s failed (%s: %s); retrying in %.2f s", what, type(error).__name__, error, delay
            )
            time.sleep(delay)
            attempt += 1


# -- checking steps -------------------------------------------------------------------------


def parse_steps(db: Store, value: Any) -> list[Step]:
    """Check a ``steps`` list against the registered node types and workflows."""
    if not isinstance(value, list | tuple) or not value:
        raise Refused(f"a non-empty list of step dicts, got {_kind(value)}")
    steps: list[Step] = []
    for i, item in enumerate(value):
        try:
            steps.append(_parse_step(db, item, [s.name for s in steps]))
        except Refused as exc:
            raise Refused(f"valid steps; step {i}: {exc}") from None
    return steps


def _parse_step(db: Store, item: Any, earlier: list[str]) -> Step:
    if not isinstance(item, Mapping):
        raise Refused(
            f"a dict like {{'node': 'UserCreateNode', 'compensation': ...}}, got {_kind(item)}"
        )
    unknown = [k for k in item if k not in STEP_KEYS]
    if unknown:
        raise Refused(
            f"unknown key(s) {', '.join(map(str, unknown))}; a step takes {', '.join(STEP_KEYS)}"
        )
    if ("node" in item) == ("workflow" in item):
        raise Refused("exactly one of 'node' (a node type) or 'workflow' (a registered workflow)")
    target = item.get("node") or item.get("workflow")
    name = item.get("name", target)
    if not isinstance(name, str) or not name or "." in name:
        raise Refused(f"'name' must be a non-empty string without dots, got {name!r}")
    if name == DATA or name in earlier:
        taken = (
            "is reserved for the manager's data" if name == DATA else "is taken by an earlier step"
        )
        raise Refused(f"the name '{name}' {taken}; give the step another 'name'")
    params = item.get("params", {})
    connections = item.get("connections", {})
    if not isinstance(params, Mapping):
        raise Refused(f"'params' must be a dict, got {_kind(params)}")
    if not isinstance(connections, Mapping) or not all(
        isinstance(v, str) and v for v in connections.values()
    ):
        raise Refused("'connections' must map parameter names to 'step_name.output.path' strings")
    for param, source in connections.items():
        origin = source.split(".", 1)[0]
        if origin != DATA and origin not in earlier:
            known = ", ".join([*earlier, DATA])
            raise Refused(
                f"connection '{param}' comes from '{origin}', not an earlier step ({known})"
            )
        if param in params:
            raise Refused(f"'{param}' is set in 'params' and also connected; keep one")
    if "node" in item:
        _check_node_step(db, name, target, params, connections)
    else:
        _check_workflow_step(db, name, target, params, connections)
    compensation = item.get("compensation")
    undo = None
    if compensation is not None:
        step_cls = None
        if "node" in item:
            step_cls = node_type(db, target, "'node'", params.get(NAMESPACE_PARAM))
        undo = _check_compensation(db, name, step_cls, compensation)
    retry_attempts = item.get("retry_attempts")
    if retry_attempts is not None:
        try:
            retry_attempts = check_count(retry_attempts)
        except Refused as exc:
            raise Refused(f"'retry_attempts' expects {exc}") from None
    return Step(
        name=name,
        node=item.get("node"),
        workflow=item.get("workflow"),
        params=dict(params),
        connections=dict(connections),
        compensation=compensation,
        has_compensation="compensation" in item,
        retry_attempts=retry_attempts,
        undo=undo,
    )


def node_type(db: Store, name: Any, what: str, database: Any = None) -> type[Node]:
    if not isinstance(name, str):
        raise Refused(f"{what} names a registered node type, got {_kind(name)}")
    try:
        return db.node_type(name, database)
    except WorkflowValidationError as exc:
        raise Refused(f"{what} names a registered node type: {exc}") from None


def _check_node_step(
    db: Store, name: str, node: Any, params: Mapping, connections: Mapping
) -> None:
    cls = node_type(db, node, "'node'", params.get(NAMESPACE_PARAM))
    try:
        cls.validate_config(name, params, frozenset(connections))
    except KailashError as exc:
        raise Refused(str(exc)) from None
    for param in connections:
        if not cls.accepts(param):
            raise Refused(f"connection target '{param}' is not a parameter of {node}")


def _check_workflow_step(
    db: Store, name: str, workflow: Any, params: Mapping, connections: Mapping
) -> None:
    if not isinstance(workflow, str) or workflow not in db.workflows:
        known = ", ".join(db.workflows) or "none yet"
        raise Refused(
            f"'workflow' names a workflow registered with db.register_workflow(name, workflow); "
            f"{workflow!r} is not one (registered: {known})"
        )
    built: Workflow = db.workflows[workflow]
    for key in [*params, *connections]:
        if key not in built.nodes and not any(type(n).accepts(key) for n in built.nodes.values()):
            raise Refused(
                f"'{key}' is neither a node id of workflow '{workflow}' "
                f"({', '.join(built.nodes)}) nor a parameter any of its nodes takes"
            )


def _check_compensation(
    db: Store, step: str, step_cls: type[Node] | None, compensation: Any
) -> str | None:
    """Check the compensation; for a generated node, return the operation it undoes."""
    cls = node_type(db, compensation, "'compensation'")
    missing = [p for p in COMPENSATION_PARAMS if not cls.accepts(p)]
    if not missing:
        return None
    undone = pairing(db, step, step_cls, cls)
    if undone is None:
        raise Refused(
            f"compensation {compensation} receives the step's input and output as parameters "
            f"{' and '.join(COMPENSATION_PARAMS)}; it does not declare {', '.join(missing)}. "
            f"Or name a generated node: {_PAIRINGS}"
        )
    return undone


#: A generated node's operation, by the base class of its type.
_OPERATIONS: tuple[tuple[type[crud.ModelNode], str], ...] = (
    (crud.CreateNode, "Create"),
    (crud.UpdateNode, "Update"),
    (crud.DeleteNode, "Delete"),
    (crud.RestoreNode, "Restore"),
)
#: Step operation -> the operations of the same model that undo it.
UNDOES = {"Create": ("Delete",), "Update": ("Update",), "Delete": ("Restore", "Create")}
_PAIRINGS = (
    "a model's Delete node undoes its Create steps, its Update node its Update steps, and its "
    "Restore or Create node its Delete steps"
)


def operation(cls: type[Node]) -> str | None:
    """``Create``, ``Update``, ``Delete`` or ``Restore`` for a generated node type, else None."""
    if getattr(cls, "model", None) is None:
        return None
    for base, name in _OPERATIONS:
        if issubclass(cls, base):
            return name
    return None


def pairing(
    db: Store, step: str, step_cls: type[Node] | None, compensation: type[Node]
) -> str | None:
    """The operation of the step that the generated node ``compensation`` undoes.

    None when ``compensation`` is no generated node that can undo anything; Refused, naming
    the fix, when it is one but cannot undo this step.
    """
    undoer = operation(compensation)
    if undoer is None or not any(undoer in ops for ops in UNDOES.values()):
        return None
    name = compensation.node_type()
    model = compensation.model.name  # type: ignore[attr-defined]
    fix = "or give a compensation node taking step_input and step_output"
    if step_cls is None:
        raise Refused(
            f"compensation {name} undoes a single node step of {model}; a workflow step needs "
            f"a compensation node taking step_input and step_output"
        )
    done = operation(step_cls)
    step_model = getattr(step_cls, "model", None)
    if step_model is None or step_model.name != model:
        raise Refused(
            f"compensation {name} undoes steps of {model}, but step '{step}' runs "
            f"{step_cls.node_type()}; {_PAIRINGS}, of the step's own model. Name one of those, "
            f"{fix}"
        )
    if getattr(step_cls, "store", None) is not db or compensation.store is not db:  # type: ignore[attr-defined]
        raise Refused(
            f"step '{step}' and its compensation {name} must be nodes of the DataFlow running "
            f"the saga ({db.name!r}): a generated compensation keeps what it undoes in that "
            f"DataFlow's saga log, in the step's transaction. Run the saga with the "
            f"TransactionManagerNode of the DataFlow that defines {model}, {fix}"
        )
    if done is None or undoer not in UNDOES[done]:
        if done in UNDOES:
            names = [f"{model}{op}Node" for op in UNDOES[done]]
            found = " or ".join(n for n in names if n in db.nodes)
            hint = f"a {step_cls.node_type()} step is undone by {found}"
        else:
            hint = f"a {step_cls.node_type()} step has no generated compensation; {_PAIRINGS}"
        raise Refused(f"compensation {name} cannot undo step '{step}': {hint}, {fix}")
    return done


def _kind(value: Any) -> str:
    return type(value).__name__
