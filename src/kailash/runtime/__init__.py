"""Workflow runtimes."""

from kailash.runtime.context import RunContext, current_run
from kailash.runtime.local import AsyncLocalRuntime, LocalRuntime

__all__ = ["AsyncLocalRuntime", "LocalRuntime", "RunContext", "current_run"]
