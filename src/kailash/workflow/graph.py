"""A built, validated, immutable workflow."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kailash.errors import WorkflowValidationError
from kailash.nodes.base import Node


@dataclass(frozen=True, slots=True)
class Connection:
    """``source``'s output at ``source_output`` (a dotted path) feeds ``target``'s input."""

    source: str
    source_output: str
    target: str
    target_input: str

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.source_output.split("."))

    def describe(self) -> str:
        return f"{self.source}.{self.source_output} -> {self.target}.{self.target_input}"

    def pick(self, output: Mapping[str, Any]) -> Any:
        """Follow the dotted path into ``output``; ``result`` is the whole output if unnamed."""
        parts = self.path
        if parts[0] == "result" and "result" not in output:
            parts = parts[1:]
        value: Any = output
        walked: list[str] = []
        for part in parts:
            if isinstance(value, Mapping):
                if part not in value:
                    keys = ", ".join(map(str, value)) or "(none)"
                    where = ".".join(walked) or "the output"
                    raise WorkflowValidationError(
                        f"connection {self.describe()}: {where} of node '{self.source}' has no "
                        f"key '{part}' (keys: {keys})",
                        self.target,
                    )
                value = value[part]
            elif isinstance(value, list | tuple) and part.lstrip("-").isdigit():
                index = int(part)
                if not -len(value) <= index < len(value):
                    raise WorkflowValidationError(
                        f"connection {self.describe()}: index {index} is out of range for a "
                        f"list of {len(value)} items",
                        self.target,
                    )
                value = value[index]
            else:
                raise WorkflowValidationError(
                    f"connection {self.describe()}: cannot take '{part}' of a "
                    f"{type(value).__name__}",
                    self.target,
                )
            walked.append(part)
        return value


@dataclass(frozen=True, slots=True)
class Step:
    """One node of the execution plan, with the connections that feed it."""

    node_id: str
    node: Node
    incoming: tuple[Connection, ...]


class Workflow:
    """The product of ``WorkflowBuilder.build()``: nodes in dependency order."""

    def __init__(self, steps: list[Step], connections: list[Connection], name: str = "") -> None:
        self.name = name
        self.steps: tuple[Step, ...] = tuple(steps)
        self.connections: tuple[Connection, ...] = tuple(connections)
        self.nodes: dict[str, Node] = {step.node_id: step.node for step in steps}

    @property
    def order(self) -> list[str]:
        return [step.node_id for step in self.steps]

    def __repr__(self) -> str:
        return f"<Workflow {self.name or ''} nodes={self.order}>"
