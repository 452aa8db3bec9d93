"""Run a built workflow: nodes in dependency order, outputs fed along connections."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Generator, Mapping
from typing import Any

from kailash.errors import NodeExecutionError, WorkflowValidationError
from kailash.runtime.context import RunContext, _current_run
from kailash.workflow.graph import Step, Workflow

Results = dict[str, dict[str, Any]]


def _split_parameters(
    workflow: Workflow, parameters: Mapping[str, Any] | None
) -> dict[str, dict[str, Any]]:
    """Per-node overrides from run parameters.

    A key naming a node carries that node's parameters; any other key is a run-wide value
    given to every node that takes a parameter of that name.
    """
    if not parameters:
        return {}
    per_node: dict[str, dict[str, Any]] = {}
    for key, value in parameters.items():
        if key in workflow.nodes:
            if not isinstance(value, Mapping):
                raise WorkflowValidationError(
                    f"parameters['{key}'] must be a dict of that node's parameters, got "
                    f"{type(value).__name__}",
                    key,
                )
            per_node.setdefault(key, {}).update(value)
            continue
        takers = [s.node_id for s in workflow.steps if type(s.node).accepts(key)]
        if not takers:
            raise WorkflowValidationError(
                f"run parameter '{key}' is neither a node id ({', '.join(workflow.nodes)}) nor "
                "a parameter any node of this workflow takes"
            )
        for node_id in takers:
            per_node.setdefault(node_id, {}).setdefault(key, value)
    steps = {step.node_id: step for step in workflow.steps}
    for node_id, values in per_node.items():
        # Checked with the literal params they join, as the builder checked those: a node may
        # check its parameters together (an aggregate's group_by, measures and having).
        step = steps[node_id]
        fed = frozenset(c.target_input for c in step.incoming)
        type(step.node).validate_config(node_id, {**step.node.config, **values}, fed)
    return per_node


def _inputs(step: Step, results: Results, overrides: dict[str, dict[str, Any]]) -> dict:
    inputs = dict(step.node.config)
    if overrides:
        extra = overrides.get(step.node_id)
        if extra:
            inputs.update(extra)
    for conn in step.incoming:
        inputs[conn.target_input] = conn.pick(results[conn.source])
    return inputs


def _check_output(step: Step, output: Any) -> dict[str, Any]:
    if not isinstance(output, dict):
        raise TypeError(f"run() returned {type(output).__name__}; a node must return a dict")
    return output


Plan = Generator[tuple[Step, dict[str, Any]], Any, tuple[Results, str]]


def _plan(workflow: Workflow, parameters: Mapping[str, Any] | None) -> Plan:
    """Walk the steps: yield each node with its inputs, receive its output (or its error).

    The runtimes differ only in how they call a node; this is everything else a run does.
    """
    if not isinstance(workflow, Workflow):
        raise TypeError(
            f"execute() takes a built Workflow, got {type(workflow).__name__}; "
            "call workflow.build() first"
        )
    overrides = _split_parameters(workflow, parameters)
    ctx = RunContext(uuid.uuid4().hex, parameters or {}, parent=_current_run.get())
    results: Results = {}
    token = _current_run.set(ctx)
    try:
        with ctx.exit_stack:
            for step in workflow.steps:
                try:
                    inputs = step.node.prepare(_inputs(step, results, overrides))
                    output = yield step, inputs
                    results[step.node_id] = _check_output(step, output)
                except Exception as exc:
                    raise NodeExecutionError(
                        step.node_id, step.node.node_type(), exc, results
                    ) from exc
    finally:
        _current_run.reset(token)
    return results, ctx.run_id


class LocalRuntime:
    """Executes workflows in the calling thread. ``execute`` returns ``(results, run_id)``."""

    def __init__(self, **options: Any) -> None:
        unknown = set(options) - {"debug"}
        if unknown:
            raise TypeError(f"LocalRuntime got unknown options: {', '.join(sorted(unknown))}")
        self.debug = bool(options.get("debug", False))

    def __enter__(self) -> LocalRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release runtime resources (the local runtime holds none between runs)."""

    def execute(
        self, workflow: Workflow, parameters: Mapping[str, Any] | None = None
    ) -> tuple[Results, str]:
        plan = _plan(workflow, parameters)
        try:
            step, inputs = next(plan)
            while True:
                try:
                    output = step.node.run(**inputs)
                except Exception as exc:
                    step, inputs = plan.throw(exc)
                else:
                    step, inputs = plan.send(output)
        except StopIteration as done:
            return done.value


class AsyncLocalRuntime(LocalRuntime):
    """``await runtime.execute(workflow)``; safe inside a running event loop.

    Nodes with an ``async def arun`` are awaited on the loop; a workflow of plain nodes runs
    on one worker thread so the loop is never blocked.
    """

    async def __aenter__(self) -> AsyncLocalRuntime:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def execute(  # type: ignore[override]
        self, workflow: Workflow, parameters: Mapping[str, Any] | None = None
    ) -> tuple[Results, str]:
        if not any(_is_async(step) for step in getattr(workflow, "steps", ())):
            return await asyncio.to_thread(LocalRuntime.execute, self, workflow, parameters)
        plan = _plan(workflow, parameters)
        try:
            step, inputs = next(plan)
            while True:
                try:
                    if _is_async(step):
                        output = await step.node.arun(**inputs)  # type: ignore[attr-defined]
                    else:
                        output = await asyncio.to_thread(step.node.run, **inputs)
                except Exception as exc:
                    step, inputs = plan.throw(exc)
                else:
                    step, inputs = plan.send(output)
        except StopIteration as done:
            return done.value


def _is_async(step: Step) -> bool:
    return inspect.iscoroutinefunction(getattr(step.node, "arun", None))
