"""Assemble nodes and connections into a workflow."""

from __future__ import annotations

import graphlib
from collections import Counter
from collections.abc import Mapping
from typing import Any

from kailash.errors import WorkflowValidationError
from kailash.nodes.base import Node
from kailash.nodes.registry import NAMESPACE_PARAM, NodeRegistry, default_registry
from kailash.workflow.graph import Connection, Step, Workflow


class WorkflowBuilder:
    """Collects ``add_node`` and ``add_connection`` calls; ``build()`` validates them."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._nodes: list[tuple[str, str | type[Node], dict[str, Any]]] = []
        self._connections: list[Connection] = []

    def add_node(
        self,
        node_type: str | type[Node],
        node_id: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> str:
        """Add a node of ``node_type`` (a registered name or a Node class); return its id."""
        if node_id is None:
            base = node_type if isinstance(node_type, str) else node_type.__name__
            node_id = f"{base}_{len(self._nodes) + 1}"
        if not isinstance(node_id, str) or not node_id.strip() or "\x00" in node_id:
            raise WorkflowValidationError(
                f"node id must be a string with a visible character and no NUL, got {node_id!r}"
            )
        if params is not None and not isinstance(params, Mapping):
            raise WorkflowValidationError(
                f"node '{node_id}': params must be a dict, got {type(params).__name__}", node_id
            )
        self._nodes.append((node_id, node_type, dict(params or {})))
        return node_id

    def add_connection(
        self, source: str, source_output: str, target: str, target_input: str
    ) -> WorkflowBuilder:
        """Feed ``source``'s output at the dotted path ``source_output`` to ``target_input``."""
        for label, value in (("source_output", source_output), ("target_input", target_input)):
            if not isinstance(value, str) or not value:
                raise WorkflowValidationError(
                    f"connection {source} -> {target}: {label} must be a non-empty string"
                )
        self._connections.append(Connection(source, source_output, target, target_input))
        return self

    @property
    def nodes(self) -> list[tuple[str, str | type[Node], dict[str, Any]]]:
        """The nodes added so far, as ``(node_id, node_type, params)`` copies, in order."""
        return [(node_id, node_type, dict(params)) for node_id, node_type, params in self._nodes]

    @property
    def connections(self) -> list[Connection]:
        return list(self._connections)

    def build(self, registry: NodeRegistry | None = None) -> Workflow:
        """Validate the graph and return an executable ``Workflow``."""
        registry = registry or default_registry
        counts = Counter(node_id for node_id, _, _ in self._nodes)
        for node_id, n in counts.items():
            if n > 1:
                raise WorkflowValidationError(
                    f"duplicate node id '{node_id}' (added {n} times); node ids must be unique",
                    node_id,
                )
        classes: dict[str, type[Node]] = {}
        for node_id, node_type, params in self._nodes:
            if isinstance(node_type, str):
                namespace = params.get(NAMESPACE_PARAM)
                try:
                    classes[node_id] = registry.get(
                        node_type, namespace if isinstance(namespace, str) else None
                    )
                except WorkflowValidationError as exc:
                    raise WorkflowValidationError(f"node '{node_id}': {exc}", node_id) from None
            elif isinstance(node_type, type) and issubclass(node_type, Node):
                classes[node_id] = node_type
            else:
                raise WorkflowValidationError(
                    f"node '{node_id}': node type must be a registered name or a Node class, "
                    f"got {node_type!r}",
                    node_id,
                )

        incoming: dict[str, list[Connection]] = {node_id: [] for node_id in classes}
        for conn in self._connections:
            self._check_connection(conn, classes, incoming)

        sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
        for node_id, _, _ in self._nodes:
            sorter.add(node_id, *(c.source for c in incoming[node_id]))
        try:
            order = list(sorter.static_order())
        except graphlib.CycleError as exc:
            cycle = " -> ".join(exc.args[1])
            raise WorkflowValidationError(
                f"the workflow has a cycle: {cycle}", exc.args[1][0]
            ) from None

        configs = {node_id: params for node_id, _, params in self._nodes}
        for node_id, node_type, params in self._nodes:
            # A namespace picked the class; a node that does not take the parameter itself
            # has no further use for it.
            namespace = params.get(NAMESPACE_PARAM)
            picked = namespace is not None and registry.defines(node_type, namespace)
            if picked and not classes[node_id].accepts(NAMESPACE_PARAM):
                configs[node_id] = {k: v for k, v in params.items() if k != NAMESPACE_PARAM}
        steps = []
        for node_id in order:
            cls = classes[node_id]
            connected = frozenset(c.target_input for c in incoming[node_id])
            cls.validate_config(node_id, configs[node_id], connected)
            steps.append(Step(node_id, cls(node_id, configs[node_id]), tuple(incoming[node_id])))
        return Workflow(steps, list(self._connections), self.name)

    def _check_connection(
        self,
        conn: Connection,
        classes: dict[str, type[Node]],
        incoming: dict[str, list[Connection]],
    ) -> None:
        for end in (conn.source, conn.target):
            if end not in classes:
                raise WorkflowValidationError(
                    f"connection {conn.describe()}: there is no node '{end}'", end
                )
        if conn.source == conn.target:
            raise WorkflowValidationError(
                f"connection {conn.describe()}: a node cannot feed itself", conn.target
            )
        target_cls = classes[conn.target]
        if not target_cls.accepts(conn.target_input):
            known = ", ".join(sorted(target_cls.parameters))
            raise WorkflowValidationError(
                f"connection {conn.describe()}: {target_cls.node_type()} '{conn.target}' has no "
                f"parameter '{conn.target_input}'. Known parameters: {known}, input.",
                conn.target,
            )
        if conn.target_input != "input":
            for other in incoming[conn.target]:
                if other.target_input == conn.target_input:
                    raise WorkflowValidationError(
                        f"'{conn.target}.{conn.target_input}' is fed by two connections "
                        f"({other.describe()} and {conn.describe()}); keep one",
                        conn.target,
                    )
            literal = next(
                (p for nid, _, p in self._nodes if nid == conn.target and conn.target_input in p),
                None,
            )
            if literal is not None:
                raise WorkflowValidationError(
                    f"'{conn.target}.{conn.target_input}' is set in the node's params and also "
                    f"fed by {conn.describe()}; keep one",
                    conn.target,
                )
        incoming[conn.target].append(conn)
