"""Registered workflows: the inputs a caller may give, typed, and how each call applies them.

A caller varies only what the workflow's author declared: the ``{{name}}`` placeholders in node
params, and the node parameters named at registration (``inputs={"limit": "list.limit"}``).
Every other param stays as the author wrote it, so a caller allowed to run a workflow cannot
widen its filter or switch on ``confirm_all``.

A placeholder is typed by what it stands for: the parameter's type when it is a whole param, the
field's type when it is a filter value of a field (an operator object where a value belongs
would change the query), text inside a longer string, a plain JSON scalar anywhere else.

A placeholder cannot go through a node's build-time checks (``"{{price}}"`` is no float), so a
workflow with placeholders is registered as its ``WorkflowBuilder``: placeholders are found once,
the rest of the workflow is built once to check it, and each call fills the placeholders with its
inputs and builds the real workflow, whose nodes then check the filled values like any literal.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kailash.nodes.base import Node
from kailash.nodes.registry import NodeRegistry, default_registry
from kailash.servers.gateway.errors import GatewayConfigurationError, GatewayError
from kailash.servers.gateway.protocol import BOUND
from kailash.workflow.builder import WorkflowBuilder
from kailash.workflow.graph import Connection, Workflow

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_WHOLE = re.compile(r"\s*\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}\s*")
_INPUT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")

#: Any JSON value but an object or an array: what a placeholder nested in a param stands for
#: unless it is known to stand for more.
Scalar = str | int | float | bool | None
_SCALARS = (str, int, float, bool, dt.datetime, dt.date, decimal.Decimal)

_COMPARE = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})
_MANY = frozenset({"$in", "$nin", "$between"})
_TEXT = frozenset({"$like", "$ilike", "$regex", "$contains", "$startswith", "$endswith"})
_FLAGS = frozenset({"$exists", "$null"})
_LOGIC = frozenset({"$and", "$or", "$nor"})


class ParameterTypes(Protocol):
    """What a placeholder or declared input of a node stands for."""

    def parameter(self, node: type[Node], name: str) -> Any:
        """The type of ``node``'s parameter ``name`` (``object``: any JSON value)."""
        ...

    def fields(self, node: type[Node]) -> Mapping[str, Any] | None:
        """Field name -> type of the model ``node`` acts on; None for a node of no model."""
        ...


class DeclaredTypes:
    """Types as the nodes declare them, with no model known."""

    def parameter(self, node: type[Node], name: str) -> Any:
        declared = node.parameters.get(name)
        return declared.type if declared is not None else object

    def fields(self, node: type[Node]) -> Mapping[str, Any] | None:
        return None


@dataclass(frozen=True, slots=True)
class _Slot:
    """What a value inside node params stands for: its type, and what each item stands for."""

    kind: Any
    items: Callable[[Any], _Slot]


def _leaf(_: Any = None) -> _Slot:
    return _Slot(Scalar, _leaf)


def _inside(fields: Mapping[str, Any]) -> Callable[[Any], _Slot]:
    """Items of a param that is no filter: a field's type under a field's name, else a scalar."""

    def items(key: Any) -> _Slot:
        if isinstance(key, str) and key in fields and fields[key] in _SCALARS:
            return _Slot(fields[key], _leaf)
        return _Slot(Scalar, items)

    return items


def _filter(fields: Mapping[str, Any]) -> Callable[[Any], _Slot]:
    """Items of a filter: conditions on fields, and the logical operators' filters."""

    def items(key: Any) -> _Slot:
        if key in _LOGIC:
            return _Slot(list[dict[str, Any]], lambda _: _Slot(dict[str, Any], items))
        if key == "$not":
            return _Slot(dict[str, Any], items)
        if isinstance(key, str) and key in fields:
            return _condition(fields[key])
        return _leaf()

    return items


def _condition(kind: Any) -> _Slot:
    """A field's condition: its value (never an operator object), or operators on it."""
    value = kind if kind in _SCALARS else Scalar

    def items(op: Any) -> _Slot:
        if op in _COMPARE:
            return _Slot(value, _leaf)
        if op in _MANY:
            return _Slot(list[value], lambda _: _Slot(value, _leaf))  # type: ignore[valid-type]
        if op in _TEXT:
            return _Slot(str, _leaf)
        if op in _FLAGS:
            return _Slot(bool, _leaf)
        if op == "$not":
            return _condition(kind)
        return _leaf()

    return _Slot(value, items)


def _found(value: Any, slot: _Slot) -> list[tuple[str, Any]]:
    """Placeholders in ``value`` (standing for ``slot``) with their input types."""
    if isinstance(value, str):
        whole = _WHOLE.fullmatch(value)
        if whole:
            return [(whole.group(1), slot.kind)]
        return [(name, str) for name in _PLACEHOLDER.findall(value)]
    if isinstance(value, Mapping):
        return [f for key, item in value.items() for f in _found(item, slot.items(key))]
    if isinstance(value, list | tuple):
        return [f for i, item in enumerate(value) for f in _found(item, slot.items(i))]
    return []


def _has_placeholder(value: Any) -> bool:
    return bool(_found(value, _leaf()))


def _templated_bound(value: Any) -> str | None:
    """A key of ``BOUND`` whose value, somewhere inside ``value``, holds a placeholder."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key in BOUND and _has_placeholder(item):
                return str(key)
            found = _templated_bound(item)
            if found:
                return found
    elif isinstance(value, list | tuple):
        return next(filter(None, map(_templated_bound, value)), None)
    return None


def _fill(value: Any, inputs: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        whole = _WHOLE.fullmatch(value)
        if whole:
            return inputs[whole.group(1)]
        return _PLACEHOLDER.sub(lambda m: str(inputs[m.group(1)]), value)
    if isinstance(value, Mapping):
        return {k: _fill(v, inputs) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_fill(v, inputs) for v in value]
    return value


def _narrower(a: Any, b: Any) -> Any:
    """The type both uses of one input accept, or None when they conflict."""
    if a == b or b is object:
        return a
    if a is object:
        return b
    if a == Scalar and b in _SCALARS:
        return b
    if b == Scalar and a in _SCALARS:
        return a
    return None


def _type_name(kind: Any) -> str:
    return kind.__name__ if isinstance(kind, type) else str(kind).replace("typing.", "")


class RegisteredWorkflow:
    """A workflow served under a name; ``prepare(inputs)`` gives what one call runs.

    ``inputs`` maps input names to node parameters (``"node_id.param"``, or a list of them,
    all set to the input's value) that a caller may set; they are optional, the workflow's own
    params applying when left out. Placeholders are inputs too, and required.
    """

    def __init__(
        self,
        name: str,
        workflow: WorkflowBuilder | Workflow,
        registry: NodeRegistry | None = None,
        *,
        inputs: Mapping[str, str | Sequence[str]] | None = None,
        types: ParameterTypes | None = None,
    ) -> None:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise GatewayConfigurationError(
                f"workflow name {name!r} must start with a letter and hold only letters, digits, "
                "'_' and '-' (at most 64 characters)"
            )
        self.name = name
        self._registry = registry or default_registry
        self._types: ParameterTypes = types or DeclaredTypes()
        #: Input name -> the type a call's value is converted to (``object``: any JSON).
        self.inputs: dict[str, Any] = {}
        #: Inputs a call may leave out: the declared node parameters.
        self.optional: set[str] = set()
        self._templated: set[tuple[str, str]] = set()
        self._declared: dict[str, list[tuple[str, str]]] = {}
        self._built: Workflow | None
        params: dict[str, tuple[type[Node], Mapping[str, Any]]]
        connections: Sequence[Connection]
        if isinstance(workflow, Workflow):
            self._built = workflow
            params = {s.node_id: (type(s.node), s.node.config) for s in workflow.steps}
            connections = workflow.connections
        elif isinstance(workflow, WorkflowBuilder):
            self._built = None
            self._nodes = workflow.nodes
            self._connections = workflow.connections
            params = {
                node_id: (self._class(node_type), node_params)
                for node_id, node_type, node_params in self._nodes
            }
            connections = self._connections
        else:
            raise GatewayConfigurationError(
                f"register('{name}', ...) takes a WorkflowBuilder or a built Workflow, got "
                f"{type(workflow).__name__}"
            )
        for node_id, (_, node_params) in params.items():
            targets = (c.target_input for c in connections if c.target == node_id)
            self._check_bound(node_id, node_params, targets)
        self.node_classes = [cls for cls, _ in params.values()]
        if self._built is None:
            self._find_placeholders(params)
        else:
            self._check_built(self._built)
        self._declare(inputs or {}, params, connections)
        if self._built is None:
            self._assemble(None).build(self._registry)

    def _class(self, node_type: str | type[Node]) -> type[Node]:
        return self._registry.get(node_type) if isinstance(node_type, str) else node_type

    def _find_placeholders(
        self, params: Mapping[str, tuple[type[Node], Mapping[str, Any]]]
    ) -> None:
        for node_id, (cls, node_params) in params.items():
            fields = self._types.fields(cls)
            for param, value in node_params.items():
                items = _filter(fields) if param == "filter" and fields else _inside(fields or {})
                slot = _Slot(self._types.parameter(cls, param), items)
                for input_name, kind in _found(value, slot):
                    self._add_input(input_name, kind, f"{node_id}.{param}")
                    self._templated.add((node_id, param))

    def _declare(
        self,
        declared: Mapping[str, str | Sequence[str]],
        params: Mapping[str, tuple[type[Node], Mapping[str, Any]]],
        connections: Sequence[Connection],
    ) -> None:
        """Check the node parameters the author lets callers set, and type them."""
        if not isinstance(declared, Mapping):
            raise GatewayConfigurationError(
                f"workflow '{self.name}': inputs must be a dict of input name -> "
                "'node_id.parameter' (or a list of them)"
            )
        fed = {(c.target, c.target_input) for c in connections}
        for input_name, where in declared.items():
            if not isinstance(input_name, str) or not _INPUT.fullmatch(input_name):
                raise GatewayConfigurationError(
                    f"workflow '{self.name}': input name {input_name!r} must be an identifier "
                    "(letters, digits, '_')"
                )
            if input_name in self.inputs:
                raise GatewayConfigurationError(
                    f"workflow '{self.name}': input '{input_name}' is already a "
                    "{{placeholder}}; give the declared parameter another name"
                )
            targets = [where] if isinstance(where, str) else list(where)
            if not targets:
                raise GatewayConfigurationError(
                    f"workflow '{self.name}': input '{input_name}' names no node parameter"
                )
            self._declared[input_name] = []
            for target in targets:
                node_id, param = self._target(input_name, target, params)
                if (node_id, param) in self._templated:
                    raise GatewayConfigurationError(
                        f"workflow '{self.name}': {target} holds a {{{{placeholder}}}} already; "
                        f"declare it as input '{input_name}' or template it, not both"
                    )
                if (node_id, param) in fed:
                    raise GatewayConfigurationError(
                        f"workflow '{self.name}': {target} is fed by a connection, which would "
                        "replace the caller's value; declare another parameter"
                    )
                kind = self._types.parameter(params[node_id][0], param)
                self._add_input(input_name, kind, target)
                self._declared[input_name].append((node_id, param))
            self.optional.add(input_name)

    def _target(
        self,
        input_name: str,
        target: Any,
        params: Mapping[str, tuple[type[Node], Mapping[str, Any]]],
    ) -> tuple[str, str]:
        node_id, _, param = target.partition(".") if isinstance(target, str) else ("", "", "")
        if node_id not in params or not param:
            raise GatewayConfigurationError(
                f"workflow '{self.name}': input '{input_name}' must name 'node_id.parameter' "
                f"with a node of the workflow ({', '.join(params)}), got {target!r}"
            )
        cls = params[node_id][0]
        if param in BOUND or param == "input" or not cls.accepts(param):
            taken = ", ".join(p for p in cls.parameters if p not in BOUND) or "(none)"
            raise GatewayConfigurationError(
                f"workflow '{self.name}': input '{input_name}': node '{node_id}' has no parameter "
                f"'{param}' a caller may set; it takes: {taken}"
            )
        return node_id, param

    def _add_input(self, name: str, kind: Any, where: str) -> None:
        taken = self.inputs.get(name)
        if taken is None:
            self.inputs[name] = kind
            return
        merged = _narrower(taken, kind)
        if merged is None:
            raise GatewayConfigurationError(
                f"workflow '{self.name}': input '{name}' is a {_type_name(taken)} elsewhere but a "
                f"{_type_name(kind)} at {where}; use two inputs"
            )
        self.inputs[name] = merged

    def _check_bound(self, node_id: str, params: Mapping[str, Any], fed: Iterable[str]) -> None:
        """Refuse a tenant or actor that the workflow, not the caller's credentials, would set."""
        named = [p for p in (*params, *fed) if p in BOUND]
        nested = [found for found in map(_templated_bound, params.values()) if found]
        if named or nested:
            raise GatewayConfigurationError(
                f"workflow '{self.name}': node '{node_id}' sets {(named or nested)[0]}, which "
                "each call takes from the caller's credentials (and tenant header); leave it "
                "out of the workflow's params and connections"
            )

    def _check_built(self, workflow: Workflow) -> None:
        for step in workflow.steps:
            for param, value in step.node.config.items():
                if _has_placeholder(value):
                    raise GatewayConfigurationError(
                        f"workflow '{self.name}': {step.node_id}.{param} holds a {{{{...}}}} "
                        "placeholder; register the WorkflowBuilder (before build()) so "
                        "placeholders are filled on each call"
                    )

    def _assemble(self, inputs: Mapping[str, Any] | None) -> WorkflowBuilder:
        """The builder with placeholders filled (``None``: with templated params left out)."""
        builder = WorkflowBuilder(self.name)
        for node_id, node_type, params in self._nodes:
            kept = {}
            for param, value in params.items():
                if (node_id, param) not in self._templated:
                    kept[param] = value
                elif inputs is not None:
                    kept[param] = _fill(value, inputs)
            builder.add_node(node_type, node_id, kept)
        for conn in self._connections:
            builder.add_connection(conn.source, conn.source_output, conn.target, conn.target_input)
        return builder

    def prepare(self, inputs: Mapping[str, Any]) -> tuple[Workflow, dict[str, Any]]:
        """The workflow one call runs and its run parameters; ``inputs`` are already checked."""
        unknown = sorted(set(inputs) - set(self.inputs))
        if unknown:  # the request schemas refuse these first; this guards direct callers
            known = ", ".join(self.inputs) or "(none)"
            raise GatewayError(
                422,
                "validation_error",
                f"workflow '{self.name}' takes no input '{unknown[0]}'; its inputs: {known}",
                field=unknown[0],
            )
        parameters: dict[str, Any] = {}
        for input_name, targets in self._declared.items():
            if input_name in inputs:
                for node_id, param in targets:
                    parameters.setdefault(node_id, {})[param] = inputs[input_name]
        if self._built is not None:
            return self._built, parameters
        return self._assemble(inputs).build(self._registry), parameters
