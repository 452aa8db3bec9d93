"""``{{name}}`` placeholders in registered workflows: found once, filled per call."""

from __future__ import annotations

import pytest

from kailash import LocalRuntime, Node, NodeParameter, WorkflowBuilder
from kailash.errors import NodeConfigurationError
from kailash.servers.gateway.errors import GatewayConfigurationError, GatewayError
from kailash.servers.gateway.templates import RegisteredWorkflow, Scalar


class Priced(Node):
    """Refuses a price that is not a float at build time, as DataFlow's nodes do."""

    parameters = {
        "name": NodeParameter("name", str, required=True),
        "price": NodeParameter("price", float, required=True),
        "tags": NodeParameter("tags", list),
    }

    @classmethod
    def validate_config(cls, node_id, config, connected):
        super().validate_config(node_id, config, connected)
        if "price" in config and not isinstance(config["price"], float):
            raise NodeConfigurationError(f"{node_id}: price must be a float", node_id)

    def run(self, name: str, price: float, tags: list | None = None) -> dict:
        return {"name": name, "price": price, "tags": tags}


def builder() -> WorkflowBuilder:
    wf = WorkflowBuilder()
    wf.add_node(
        Priced,
        "create",
        {
            "name": "{{product_name}}",
            "price": "{{ product_price }}",
            "tags": ["new", "{{product_name}}"],
        },
    )
    wf.add_node(Priced, "label", {"name": "Label for {{product_name}}", "price": 1.0})
    return wf


def test_placeholders_become_typed_inputs():
    registered = RegisteredWorkflow("create_product", builder())
    assert registered.inputs == {"product_name": str, "product_price": float}


def test_each_call_fills_the_placeholders_and_builds_the_checked_workflow():
    registered = RegisteredWorkflow("create_product", builder())
    workflow, parameters = registered.prepare({"product_name": "Lamp", "product_price": 19.5})
    assert parameters == {}
    results, _ = LocalRuntime().execute(workflow)
    assert results["create"] == {"name": "Lamp", "price": 19.5, "tags": ["new", "Lamp"]}
    assert results["label"]["name"] == "Label for Lamp"


def test_the_rest_of_the_workflow_is_checked_at_registration():
    wf = builder()
    wf.add_connection("create", "name", "label", "colour")
    with pytest.raises(Exception, match="no parameter 'colour'"):
        RegisteredWorkflow("broken", wf)


def test_one_input_with_two_types_is_refused():
    wf = WorkflowBuilder()
    wf.add_node(Priced, "a", {"name": "{{x}}", "price": "{{x}}"})
    with pytest.raises(GatewayConfigurationError, match="input 'x' is a str elsewhere but a float"):
        RegisteredWorkflow("clash", wf)


def test_a_built_workflow_with_placeholders_is_refused_with_the_fix():
    wf = WorkflowBuilder()
    wf.add_node(Priced, "a", {"name": "{{n}}", "price": 1.0})
    with pytest.raises(GatewayConfigurationError, match="register the WorkflowBuilder"):
        RegisteredWorkflow("built", wf.build())


def test_a_built_workflow_takes_only_the_parameters_its_author_declares():
    wf = WorkflowBuilder()
    wf.add_node(Priced, "a", {"name": "fixed", "price": 1.0})
    assert RegisteredWorkflow("closed", wf.build()).inputs == {}
    registered = RegisteredWorkflow("built", wf.build(), inputs={"price": "a.price"})
    assert (registered.inputs, registered.optional) == ({"price": float}, {"price"})
    workflow, parameters = registered.prepare({"price": 2.0})
    assert parameters == {"a": {"price": 2.0}}
    results, _ = LocalRuntime().execute(workflow, parameters)
    assert results["a"] == {"name": "fixed", "price": 2.0, "tags": None}
    assert registered.prepare({})[1] == {}
    with pytest.raises(GatewayError, match="takes no input 'a'") as caught:
        registered.prepare({"a": {"name": "other"}})
    assert (caught.value.status, caught.value.field) == (422, "a")


def test_a_nested_placeholder_stands_for_a_scalar():
    wf = WorkflowBuilder()
    wf.add_node(Priced, "a", {"name": "n", "price": 1.0, "tags": ["{{tag}}"]})
    assert RegisteredWorkflow("tagged", wf).inputs == {"tag": Scalar}


@pytest.mark.parametrize("name", ["", "1abc", "has space", "x" * 65])
def test_workflow_names_must_fit_urls_and_tool_names(name):
    with pytest.raises(GatewayConfigurationError, match="must start with a letter"):
        RegisteredWorkflow(name, builder())


class Scoped(Node):
    """Takes the tenant and actor a gateway binds from the caller's credentials."""

    parameters = {
        "tenant_id": NodeParameter("tenant_id", str),
        "actor": NodeParameter("actor", str),
        "spec": NodeParameter("spec", dict),
    }

    def run(self, **inputs: object) -> dict:
        return dict(inputs)


def scoped(params: dict, connect_to: str | None = None) -> WorkflowBuilder:
    wf = WorkflowBuilder()
    wf.add_node(Priced, "source", {"name": "n", "price": 1.0})
    wf.add_node(Scoped, "scoped", params)
    if connect_to:
        wf.add_connection("source", "name", "scoped", connect_to)
    return wf


@pytest.mark.parametrize(
    ("params", "connect_to", "named"),
    [
        ({"tenant_id": "t1"}, None, "tenant_id"),
        ({"tenant_id": "{{tenant}}"}, None, "tenant_id"),
        ({"actor": "{{who}}"}, None, "actor"),
        ({"spec": {"steps": [{"params": {"tenant_id": "{{tenant}}"}}]}}, None, "tenant_id"),
        ({}, "tenant_id", "tenant_id"),
    ],
)
def test_a_workflow_may_not_set_the_tenant_or_actor_a_caller_binds(params, connect_to, named):
    for workflow in (scoped(params, connect_to), scoped(params, connect_to).build()):
        with pytest.raises(GatewayConfigurationError) as caught:
            RegisteredWorkflow("scoped", workflow)
        assert f"node 'scoped' sets {named}" in str(caught.value)
        assert "caller's credentials" in str(caught.value)
    fixed = {"spec": {"steps": [{"params": {"tenant_id": "t1"}}]}}
    assert RegisteredWorkflow("fixed", scoped(fixed)).inputs == {}
