"""Kailash: the workflow core (nodes, builder, runtimes)."""

from kailash.errors import (
    KailashError,
    NodeConfigurationError,
    NodeExecutionError,
    WorkflowValidationError,
)
from kailash.nodes import Node, NodeParameter, register_node
from kailash.runtime import AsyncLocalRuntime, LocalRuntime
from kailash.workflow import Workflow, WorkflowBuilder

__all__ = [
    "AsyncLocalRuntime",
    "KailashError",
    "LocalRuntime",
    "Node",
    "NodeConfigurationError",
    "NodeExecutionError",
    "NodeParameter",
    "Workflow",
    "WorkflowBuilder",
    "WorkflowValidationError",
    "register_node",
]
