"""The Node base class and parameter declarations."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from kailash.errors import NodeConfigurationError

_TEMPLATE = re.compile(r"\$\{[^}]*\}")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True, slots=True)
class NodeParameter:
    """One declared input of a node."""

    name: str
    type: Any = object
    required: bool = False
    default: Any = MISSING
    description: str = ""


def find_template(value: Any) -> str | None:
    """Return the first ``${...}`` template inside a literal value, if any.

    Walks without recursion: a value nested 100,000 deep is searched, not a RecursionError.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            match = _TEMPLATE.search(item)
            if match:
                return match.group(0)
        elif isinstance(item, Mapping):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list | tuple):
            stack.extend(reversed(item))
    return None


class Node(ABC):
    """A unit of work in a workflow.

    Subclasses declare ``parameters`` and implement ``run(**inputs) -> dict``. A node is
    instantiated once per built workflow with its literal parameters; ``run`` receives the
    literal parameters merged with connection values and run-time parameters.
    """

    parameters: ClassVar[Mapping[str, NodeParameter]] = {}
    #: Set by the registry: the name under which ``WorkflowBuilder.add_node`` finds the class.
    type_name: ClassVar[str] = ""
    #: Whether a gateway may run the node on its own for a caller. False for a node that runs
    #: other nodes named in its parameters (their permissions and tenant would go unchecked)
    #: or that only shapes the rest of a run.
    servable: ClassVar[bool] = True

    def __init__(self, node_id: str, config: Mapping[str, Any] | None = None) -> None:
        self.node_id = node_id
        self.config = dict(config or {})

    @classmethod
    def node_type(cls) -> str:
        return cls.type_name or cls.__name__

    @classmethod
    def accepts(cls, name: str) -> bool:
        """Whether ``name`` is a parameter this node takes (``input`` always is)."""
        return name == "input" or name in cls.parameters

    @classmethod
    def validate_config(
        cls, node_id: str, config: Mapping[str, Any], connected: frozenset[str]
    ) -> None:
        """Check literal parameters at build time; ``connected`` names inputs fed by connections.

        The default refuses unknown names and ``${...}`` templates. Subclasses extend it.
        """
        for name, value in config.items():
            if not cls.accepts(name):
                known = ", ".join(sorted(cls.parameters)) or "(none)"
                raise NodeConfigurationError(
                    f"{cls.node_type()} '{node_id}': unknown parameter '{name}'. "
                    f"Known parameters: {known}.",
                    node_id,
                )
            template = find_template(value)
            if template:
                raise NodeConfigurationError(
                    f"{cls.node_type()} '{node_id}': parameter '{name}' holds the template "
                    f"'{template}'. Templates are not evaluated; use "
                    f"workflow.add_connection(source_node, output, '{node_id}', '{name}') "
                    "to pass another node's output.",
                    node_id,
                )

    def prepare(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Validate and normalise the merged inputs before ``run`` (default: required check)."""
        for name, param in self.parameters.items():
            if name not in inputs:
                if param.default is not MISSING:
                    inputs[name] = param.default
                elif param.required:
                    raise NodeConfigurationError(
                        f"{self.node_type()} '{self.node_id}': missing required parameter "
                        f"'{name}'.",
                        self.node_id,
                    )
        inputs.pop("input", None)
        return inputs

    @abstractmethod
    def run(self, *args: Any, **inputs: Any) -> dict[str, Any]:
        """Do the node's work and return its output dict.

        A subclass may also define ``async def arun(**inputs)``; ``AsyncLocalRuntime`` awaits
        it instead of running ``run`` on a worker thread.
        """
