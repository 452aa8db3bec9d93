"""The state of one workflow run, visible to the nodes that run in it."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class RunContext:
    """One run: its id, its run-wide parameters, and resources its nodes share.

    ``exit_stack`` closes when the run ends and receives the run's exception, if any: a node
    that opens a run-wide resource (a transaction, say) enters it here so that it commits on
    success and rolls back on failure. ``parent`` is the run whose node started this one.
    """

    run_id: str
    parameters: Mapping[str, Any]
    resources: dict[Any, Any] = field(default_factory=dict)
    exit_stack: ExitStack = field(default_factory=ExitStack)
    parent: RunContext | None = None


_current_run: ContextVar[RunContext | None] = ContextVar("kailash_current_run", default=None)


def current_run() -> RunContext | None:
    """The run the calling node executes in, or None outside a run."""
    return _current_run.get()
