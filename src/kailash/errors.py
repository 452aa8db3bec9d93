"""Exceptions raised by the workflow core."""

from __future__ import annotations


class KailashError(Exception):
    """Root of every error the workflow core raises."""


class WorkflowValidationError(KailashError, ValueError):
    """A workflow cannot be built: unknown node type, bad connection, cycle, bad parameter."""

    def __init__(self, message: str, node_id: str | None = None) -> None:
        super().__init__(message)
        self.node_id = node_id


class NodeConfigurationError(WorkflowValidationError):
    """A node's parameters are wrong (unknown name, wrong type, template syntax)."""


class NodeExecutionError(KailashError):
    """A node failed while the workflow ran; the original error is ``cause`` and ``__cause__``."""

    def __init__(
        self,
        node_id: str,
        node_type: str,
        cause: BaseException,
        results: dict[str, dict] | None = None,
    ) -> None:
        super().__init__(f"node '{node_id}' ({node_type}) failed: {type(cause).__name__}: {cause}")
        self.node_id = node_id
        self.node_type = node_type
        self.cause = cause
        self.results = results or {}
