"""Running workflows: order, data flow along connections, failures and async use."""

from __future__ import annotations

import asyncio
import time

import pytest

from kailash import (
    AsyncLocalRuntime,
    LocalRuntime,
    Node,
    NodeExecutionError,
    NodeParameter,
    WorkflowBuilder,
    WorkflowValidationError,
)
from kailash.runtime import current_run

calls: list[str] = []


class Emit(Node):
    parameters = {"value": NodeParameter("value"), "tag": NodeParameter("tag")}

    def run(self, value=None, tag=None):
        calls.append(self.node_id)
        return {"value": value, "tag": tag, "nested": {"items": [{"v": value}]}}


class Boom(Node):
    parameters = {"value": NodeParameter("value")}

    def run(self, value=None):
        raise RuntimeError(f"exploded on {value}")


class AsyncDouble(Node):
    parameters = {"value": NodeParameter("value", required=True)}

    def run(self, value):
        return {"value": value * 2}

    async def arun(self, value):
        await asyncio.sleep(0)
        return {"value": value * 2, "async": True}


def setup_function() -> None:
    calls.clear()


def test_nodes_run_in_dependency_order_whatever_order_they_were_added():
    builder = WorkflowBuilder()
    builder.add_node(Emit, "last")
    builder.add_node(Emit, "first", {"value": 1})
    builder.add_node(Emit, "middle")
    builder.add_connection("first", "value", "middle", "value")
    builder.add_connection("middle", "value", "last", "value")
    results, run_id = LocalRuntime().execute(builder.build())
    assert calls == ["first", "middle", "last"]
    assert results["last"]["value"] == 1
    assert len(run_id) == 32


def test_dotted_paths_and_result_pick_from_the_source_output():
    builder = WorkflowBuilder()
    builder.add_node(Emit, "src", {"value": 7})
    builder.add_node(Emit, "by_path")
    builder.add_node(Emit, "whole")
    builder.add_connection("src", "nested.items.0.v", "by_path", "value")
    builder.add_connection("src", "result", "whole", "value")
    results, _ = LocalRuntime().execute(builder.build())
    assert results["by_path"]["value"] == 7
    assert results["whole"]["value"] == results["src"]


def test_input_connection_orders_without_passing_data():
    builder = WorkflowBuilder()
    builder.add_node(Emit, "b", {"value": "b"})
    builder.add_node(Emit, "a", {"value": "a"})
    builder.add_connection("a", "result", "b", "input")
    results, _ = LocalRuntime().execute(builder.build())
    assert calls == ["a", "b"]
    assert results["b"]["value"] == "b"


def test_a_missing_output_key_fails_naming_the_connection():
    builder = WorkflowBuilder()
    builder.add_node(Emit, "src", {"value": 1})
    builder.add_node(Emit, "dst")
    builder.add_connection("src", "nope", "dst", "value")
    with pytest.raises(NodeExecutionError, match="has no key 'nope'") as info:
        LocalRuntime().execute(builder.build())
    assert info.value.node_id == "dst"


def test_a_failing_node_stops_the_run_with_its_id_and_cause():
    builder = WorkflowBuilder()
    builder.add_node(Emit, "ok", {"value": 3})
    builder.add_node(Boom, "bad")
    builder.add_node(Emit, "never")
    builder.add_connection("ok", "value", "bad", "value")
    builder.add_connection("bad", "value", "never", "value")
    with pytest.raises(NodeExecutionError) as info:
        LocalRuntime().execute(builder.build())
    error = info.value
    assert error.node_id == "bad"
    assert isinstance(error.cause, RuntimeError)
    assert error.__cause__ is error.cause
    assert "exploded on 3" in str(error)
    assert set(error.results) == {"ok"}
    assert "never" not in calls


def test_run_parameters_override_per_node_and_run_wide():
    builder = WorkflowBuilder()
    builder.add_node(Emit, "a", {"value": 1})
    builder.add_node(Emit, "b", {"value": 2})
    workflow = builder.build()
    results, _ = LocalRuntime().execute(workflow, parameters={"a": {"value": 10}, "tag": "t"})
    assert results["a"] == {"value": 10, "tag": "t", "nested": {"items": [{"v": 10}]}}
    assert results["b"]["value"] == 2
    assert results["b"]["tag"] == "t"


def test_run_parameters_nobody_takes_are_refused():
    builder = WorkflowBuilder()
    builder.add_node(Emit, "a")
    with pytest.raises(WorkflowValidationError, match="run parameter 'colour'"):
        LocalRuntime().execute(builder.build(), parameters={"colour": "red"})


def test_run_parameters_are_checked_like_literal_params():
    builder = WorkflowBuilder()
    builder.add_node(Emit, "a")
    with pytest.raises(WorkflowValidationError, match="unknown parameter 'valeu'"):
        LocalRuntime().execute(builder.build(), parameters={"a": {"valeu": 1}})


def test_a_workflow_can_be_executed_many_times():
    builder = WorkflowBuilder()
    builder.add_node(Emit, "a", {"value": 1})
    workflow = builder.build()
    with LocalRuntime() as runtime:
        ids = {runtime.execute(workflow)[1] for _ in range(5)}
    assert len(ids) == 5


def test_nodes_see_their_run_context():
    seen = []

    class Peek(Node):
        def run(self):
            ctx = current_run()
            seen.append(ctx.run_id if ctx else None)
            return {}

    builder = WorkflowBuilder()
    builder.add_node(Peek, "p")
    _, run_id = LocalRuntime().execute(builder.build())
    assert seen == [run_id]
    assert current_run() is None


def test_async_runtime_works_inside_a_running_event_loop():
    builder = WorkflowBuilder()
    builder.add_node(Emit, "a", {"value": 2})
    builder.add_node(AsyncDouble, "b")
    builder.add_connection("a", "value", "b", "value")
    workflow = builder.build()

    async def handler():
        # As a web framework's request handler would: the loop is already running.
        return await AsyncLocalRuntime().execute(workflow)

    results, _ = asyncio.run(handler())
    assert results["b"] == {"value": 4, "async": True}


def test_async_runtime_runs_plain_workflows_off_the_loop():
    class Slow(Node):
        def run(self):
            time.sleep(0.05)
            return {"value": 5}

    builder = WorkflowBuilder()
    builder.add_node(Slow, "a")
    workflow = builder.build()

    async def handler():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        results = await AsyncLocalRuntime().execute(workflow)
        task.cancel()
        return results, ticks

    (results, _), ticks = asyncio.run(handler())
    assert results["a"]["value"] == 5
    assert ticks > 1, "the event loop was blocked while the workflow ran"


def test_async_runtime_reports_failures_like_the_local_runtime():
    builder = WorkflowBuilder()
    builder.add_node(AsyncDouble, "a", {"value": 1})
    builder.add_node(Boom, "bad")
    builder.add_connection("a", "value", "bad", "value")
    with pytest.raises(NodeExecutionError) as info:
        asyncio.run(AsyncLocalRuntime().execute(builder.build()))
    assert info.value.node_id == "bad"


def test_a_node_must_return_a_dict():
    class Bad(Node):
        def run(self):
            return [1]

    builder = WorkflowBuilder()
    builder.add_node(Bad, "bad")
    with pytest.raises(NodeExecutionError, match="must return a dict"):
        LocalRuntime().execute(builder.build())
