"""Registered workflows, and the ``{{name}}`` placeholders a registered builder's params hold.

A placeholder cannot go through a node's build-time checks (``"{{price}}"`` is no float), so a
workflow is registered as its ``WorkflowBuilder``: placeholders are found once, the rest of the
workflow is built once to check it, and each call fills the placeholders with its inputs and
builds the real workflow, whose nodes then check the filled values like any literal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from kailash.nodes.base import Node
from kailash.nodes.registry import NodeRegistry, default_registry
from kailash.servers.gateway.errors import GatewayConfigurationError
from kailash.servers.gateway.protocol import BOUND
from kailash.workflow.builder import WorkflowBuilder
from kailash.workflow.graph import Workflow

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_WHOLE = re.compile(r"\s*\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}\s*")
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


def _found(value: Any, top: bool) -> list[tuple[str, Any]]:
    """Placeholders in ``value`` with their input types.

    ``"param"`` stands for the type of the parameter a whole-value placeholder fills; None for
    any JSON value (a placeholder nested in a dict or list).
    """
    if isinstance(value, str):
        whole = _WHOLE.fullmatch(value)
        if whole:
            return [(whole.group(1), "param" if top else None)]
        return [(name, str) for name in _PLACEHOLDER.findall(value)]
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return [found for item in value for found in _found(item, False)]
    return []


def _templated_bound(value: Any) -> str | None:
    """A key of ``BOUND`` whose value, somewhere inside ``value``, holds a placeholder."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key in BOUND and _found(item, False):
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


class RegisteredWorkflow:
    """A workflow served under a name; ``prepare(inputs)`` gives what one call runs."""

    def __init__(
        self,
        name: str,
        workflow: WorkflowBuilder | Workflow,
        registry: NodeRegistry | None = None,
    ) -> None:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise GatewayConfigurationError(
                f"workflow name {name!r} must start with a letter and hold only letters, digits, "
                "'_' and '-' (at most 64 characters)"
            )
        self.name = name
        self._registry = registry or default_registry
        #: Input name -> Python type applied to it (object: any JSON value); None when the
        #: workflow is a built one, whose call inputs are the runtime's run parameters.
        self.inputs: dict[str, Any] | None
        if isinstance(workflow, Workflow):
            self._built: Workflow | None = workflow
            for step in workflow.steps:
                targets = (c.target_input for c in step.incoming)
                self._check_bound(step.node_id, step.node.config, targets)
            self._check_built(workflow)
            self.inputs = None
            self.node_classes = [type(step.node) for step in workflow.steps]
            return
        if not isinstance(workflow, WorkflowBuilder):
            raise GatewayConfigurationError(
                f"register('{name}', ...) takes a WorkflowBuilder or a built Workflow, got "
                f"{type(workflow).__name__}"
            )
        self._built = None
        self._nodes = workflow.nodes
        self._connections = workflow.connections
        for node_id, _, params in self._nodes:
            targets = (c.target_input for c in self._connections if c.target == node_id)
            self._check_bound(node_id, params, targets)
        self.node_classes = [self._class(node_type) for _, node_type, _ in self._nodes]
        self.inputs = {}
        self._templated: set[tuple[str, str]] = set()
        for (node_id, _, params), cls in zip(self._nodes, self.node_classes, strict=True):
            for param, value in params.items():
                for input_name, kind in _found(value, top=True):
                    if kind == "param":
                        declared = cls.parameters.get(param)
                        kind = declared.type if declared is not None else object
                    self._add_input(input_name, kind or object, f"{node_id}.{param}")
                    self._templated.add((node_id, param))
        self._assemble(None).build(self._registry)

    def _class(self, node_type: str | type[Node]) -> type[Node]:
        return self._registry.get(node_type) if isinstance(node_type, str) else node_type

    def _add_input(self, name: str, kind: Any, where: str) -> None:
        assert self.inputs is not None
        taken = self.inputs.get(name)
        if taken is None or taken is object:
            self.inputs[name] = kind
        elif kind is not object and kind is not taken:
            raise GatewayConfigurationError(
                f"workflow '{self.name}': input '{name}' is a {taken.__name__} elsewhere but a "
                f"{kind.__name__} at {where}; use two inputs"
            )

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
                if _found(value, top=True):
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
        if self._built is not None:
            return self._built, dict(inputs)
        return self._assemble(inputs).build(self._registry), {}
