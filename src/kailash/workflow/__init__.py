"""Workflow construction: the builder and the built workflow."""

from kailash.workflow.builder import WorkflowBuilder
from kailash.workflow.graph import Connection, Workflow

__all__ = ["Connection", "Workflow", "WorkflowBuilder"]
