"""Building workflows: every structural mistake is refused at build() and names the node."""

from __future__ import annotations

import pytest

from kailash import Node, NodeParameter, WorkflowBuilder, WorkflowValidationError
from kailash.nodes import NodeRegistry


class Echo(Node):
    parameters = {"value": NodeParameter("value"), "other": NodeParameter("other")}

    def run(self, **inputs):
        return dict(inputs)


def test_unknown_node_type_is_refused_with_a_suggestion():
    registry = NodeRegistry()
    registry.register(Echo)
    builder = WorkflowBuilder()
    builder.add_node("Ecko", "first")
    with pytest.raises(
        WorkflowValidationError, match=r"node 'first': unknown node type 'Ecko'.*'Echo'"
    ) as info:
        builder.build(registry)
    assert info.value.node_id == "first"


def test_duplicate_node_id_is_refused():
    builder = WorkflowBuilder()
    builder.add_node(Echo, "same")
    builder.add_node(Echo, "same")
    with pytest.raises(WorkflowValidationError, match="duplicate node id 'same'"):
        builder.build()


@pytest.mark.parametrize("node_id", ["", " ", "\t\n", "a\x00b", "\x00"])
def test_node_ids_without_a_visible_character_or_with_nul_are_refused(node_id):
    builder = WorkflowBuilder()
    with pytest.raises(WorkflowValidationError) as info:
        builder.add_node(Echo, node_id)
    assert str(info.value) == (
        f"node id must be a string with a visible character and no NUL, got {node_id!r}"
    )
    assert builder.nodes == []
    assert builder.add_node(Echo, " padded ") == " padded "


def test_templates_are_found_in_values_nested_past_the_recursion_limit():
    deep: object = ["${other.value}"]
    for _ in range(100_000):
        deep = [deep]
    builder = WorkflowBuilder()
    builder.add_node(Echo, "a", {"value": {"x": deep}})
    with pytest.raises(WorkflowValidationError, match=r"\$\{other\.value\}"):
        builder.build()


def test_connection_to_a_missing_node_is_refused():
    builder = WorkflowBuilder()
    builder.add_node(Echo, "a")
    builder.add_connection("a", "value", "ghost", "value")
    with pytest.raises(WorkflowValidationError, match="there is no node 'ghost'") as info:
        builder.build()
    assert info.value.node_id == "ghost"


def test_connection_to_an_unknown_parameter_is_refused():
    builder = WorkflowBuilder()
    builder.add_node(Echo, "a")
    builder.add_node(Echo, "b")
    builder.add_connection("a", "value", "b", "valu")
    with pytest.raises(WorkflowValidationError, match="has no parameter 'valu'"):
        builder.build()


def test_cycle_is_refused_naming_its_nodes():
    builder = WorkflowBuilder()
    for node_id in ("a", "b", "c"):
        builder.add_node(Echo, node_id)
    builder.add_connection("a", "value", "b", "value")
    builder.add_connection("b", "value", "c", "value")
    builder.add_connection("c", "value", "a", "value")
    with pytest.raises(WorkflowValidationError, match="cycle") as info:
        builder.build()
    assert info.value.node_id in {"a", "b", "c"}
    for node_id in ("a", "b", "c"):
        assert node_id in str(info.value)


def test_an_input_fed_twice_is_refused():
    builder = WorkflowBuilder()
    for node_id in ("a", "b", "c"):
        builder.add_node(Echo, node_id)
    builder.add_connection("a", "value", "c", "value")
    builder.add_connection("b", "value", "c", "value")
    with pytest.raises(WorkflowValidationError, match="fed by two connections"):
        builder.build()


def test_an_input_both_literal_and_connected_is_refused():
    builder = WorkflowBuilder()
    builder.add_node(Echo, "a", {"value": 1})
    builder.add_node(Echo, "b", {"value": 2})
    builder.add_connection("a", "value", "b", "value")
    with pytest.raises(WorkflowValidationError, match="set in the node's params and also fed"):
        builder.build()


def test_unknown_literal_parameter_is_refused():
    builder = WorkflowBuilder()
    builder.add_node(Echo, "a", {"valeu": 1})
    with pytest.raises(WorkflowValidationError, match="unknown parameter 'valeu'"):
        builder.build()


def test_template_strings_are_refused_with_the_fix():
    builder = WorkflowBuilder()
    builder.add_node(Echo, "a", {"value": "${other.id}"})
    with pytest.raises(WorkflowValidationError, match=r"template '\$\{other.id\}'.*add_connection"):
        builder.build()


def test_registry_refuses_a_second_class_under_a_taken_name():
    registry = NodeRegistry()
    registry.register(Echo, "X")

    class Other(Echo):
        pass

    with pytest.raises(WorkflowValidationError, match="already registered"):
        registry.register(Other, "X")
    registry.register(Other, "X", replace=True)
    assert registry.get("X") is Other


def test_node_ids_are_generated_when_omitted():
    builder = WorkflowBuilder()
    first = builder.add_node(Echo)
    second = builder.add_node(Echo)
    assert first != second
    assert builder.build().order == [first, second]
