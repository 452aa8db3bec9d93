"""The code blocks of the specification's user guide, which the product must honour unchanged.

``dataflow-guide.md`` here is a verbatim copy of the specification's guide, kept only as the
source of these tests: it promises features that are not built yet, so it is no user
documentation. What users read is ``docs/guide.md``, whose examples
``tests/docs/test_guide_examples.py`` runs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from kailash import LocalRuntime, WorkflowBuilder

GUIDE = Path(__file__).resolve().with_name("dataflow-guide.md")
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_HEADING = re.compile(r"^#+ (.*)$", re.M)


def blocks() -> list[tuple[str, str]]:
    """Every Python block as (the heading above it, its code), in guide order."""
    text = GUIDE.read_text(encoding="utf-8")
    found = []
    for match in _BLOCK.finditer(text):
        headings = _HEADING.findall(text, 0, match.start())
        found.append((headings[-1].strip() if headings else "", match.group(1)))
    return found


def block(heading: str, index: int = 0) -> str:
    """The code of the ``index``-th block under a heading containing ``heading``."""
    matching = [code for title, code in blocks() if heading in title]
    if len(matching) <= index:
        raise LookupError(f"the guide has no block {index} under a heading with {heading!r}")
    return matching[index]


def run_block(heading: str, namespace: dict | None = None, index: int = 0) -> dict:
    """Execute a guide block unchanged; return its globals."""
    scope: dict = {"__name__": "__guide__", **(namespace or {})}
    exec(compile(block(heading, index), f"guide:{heading}", "exec"), scope)
    return scope


class RecordingBuilder(WorkflowBuilder):
    """A real builder that also keeps each node's parameters, to run the nodes one by one."""

    def __init__(self) -> None:
        super().__init__()
        self.added: dict[str, tuple[str, dict[str, Any]]] = {}

    def add_node(self, node_type: Any, node_id: Any = None, params: Any = None) -> str:
        self.added[node_id] = (node_type, dict(params or {}))
        return super().add_node(node_type, node_id, params)


def run_alone(workflow: RecordingBuilder, node_id: str) -> dict[str, Any]:
    """Run one recorded node as a workflow of its own; return its output."""
    node_type, params = workflow.added[node_id]
    builder = WorkflowBuilder()
    builder.add_node(node_type, node_id, params)
    results, _ = LocalRuntime().execute(builder.build())
    return results[node_id]
