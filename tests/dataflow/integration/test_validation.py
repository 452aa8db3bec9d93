"""Bad input is refused with a message naming node, parameter and fix; nothing is stored."""

from __future__ import annotations

import pytest

from dataflow import InvalidFilterError, ValidationError
from kailash import LocalRuntime, Node, NodeExecutionError, WorkflowBuilder, WorkflowValidationError
from tests.dataflow.conftest import count_rows, run_node


@pytest.fixture
def users(db):
    @db.model
    class User:
        name: str
        email: str
        active: bool = True

    return db


def build(node_type: str, params: dict):
    builder = WorkflowBuilder()
    builder.add_node(node_type, "create", params)
    return builder.build()


def test_unknown_parameter_names_the_fields_and_the_likely_fix(users):
    with pytest.raises(ValidationError) as info:
        build("UserCreateNode", {"name": "A", "emial": "a@x"})
    message = str(info.value)
    assert message.startswith("UserCreateNode 'create': unknown parameter 'emial'.")
    assert "User has fields: name, email, active." in message
    assert "Did you mean 'email'?" in message
    assert info.value.param == "emial"
    assert isinstance(info.value, WorkflowValidationError)
    assert count_rows(users, "users") == 0


def test_wrong_type_is_refused(users):
    with pytest.raises(
        ValidationError, match="parameter 'active' expects a bool \\(True or False\\), got str"
    ):
        build("UserCreateNode", {"name": "A", "email": "a@x", "active": "yes"})
    with pytest.raises(ValidationError, match="parameter 'name' expects a str, got int"):
        build("UserCreateNode", {"name": 5, "email": "a@x"})
    assert count_rows(users, "users") == 0


def test_none_is_refused_for_a_required_field(users):
    with pytest.raises(ValidationError, match="'email' is not Optional, so None is refused"):
        build("UserCreateNode", {"name": "A", "email": None})


def test_missing_required_field_is_refused_at_run_time(users):
    workflow = build("UserCreateNode", {"name": "A"})
    with pytest.raises(NodeExecutionError) as info:
        LocalRuntime().execute(workflow)
    cause = info.value.cause
    assert isinstance(cause, ValidationError)
    assert "UserCreateNode 'create': missing required parameter 'email'" in str(cause)
    assert "add_connection" in str(cause)
    assert count_rows(users, "users") == 0


def test_template_strings_are_refused_with_the_fix(users):
    with pytest.raises(ValidationError) as info:
        build("UserCreateNode", {"name": "${other.name}", "email": "a@x"})
    assert "template '${other.name}'" in str(info.value)
    assert "add_connection(source, output, 'create', 'name')" in str(info.value)
    with pytest.raises(ValidationError, match="template"):
        build("UserListNode", {"filter": {"name": "${x}"}})
    assert count_rows(users, "users") == 0


def test_unknown_field_in_a_filter_is_refused(users):
    with pytest.raises(InvalidFilterError) as info:
        build("UserListNode", {"filter": {"emali": "a@x"}})
    assert str(info.value).startswith(
        "UserListNode 'create': filter.emali: unknown field 'emali'. Did you mean 'email'?"
    )
    assert info.value.path == "filter.emali"
    assert info.value.param == "filter"


def test_unknown_operators_are_refused_never_ignored(users):
    with pytest.raises(ValidationError, match=r"filter.\$where: unknown operator"):
        build("UserListNode", {"filter": {"$where": "1=1"}})


def test_filter_values_are_coerced_to_the_field_type(users):
    with pytest.raises(ValidationError, match="filter.active: expects a bool"):
        build("UserCountNode", {"filter": {"active": "yes"}})


def test_unknown_sort_field_and_direction_are_refused(users):
    with pytest.raises(ValidationError, match="unknown field 'nme'"):
        build("UserListNode", {"sort": ["nme"]})
    with pytest.raises(ValidationError, match="direction must be 1, -1, 'asc' or 'desc'"):
        build("UserListNode", {"sort": [{"name": "up"}]})


def test_bad_paging_values_are_refused(users):
    with pytest.raises(ValidationError, match="parameter 'limit' expects a non-negative int"):
        build("UserListNode", {"limit": -1})
    with pytest.raises(ValidationError, match="parameter 'fields' expects field names"):
        build("UserListNode", {"fields": ["name", "secret"]})


def test_values_from_connections_are_validated_like_literals(users):
    class Source(Node):
        def run(self):
            return {"name": 12345}

    builder = WorkflowBuilder()
    builder.add_node(Source, "src")
    builder.add_node("UserCreateNode", "create", {"email": "a@x"})
    builder.add_connection("src", "name", "create", "name")
    with pytest.raises(NodeExecutionError) as info:
        LocalRuntime().execute(builder.build())
    assert info.value.node_id == "create"
    assert "parameter 'name' expects a str, got int" in str(info.value.cause)
    assert count_rows(users, "users") == 0


def test_run_time_parameters_are_validated_like_literals(users):
    workflow = build("UserCreateNode", {"name": "A", "email": "a@x"})
    with pytest.raises(ValidationError, match="unknown parameter 'nmae'"):
        LocalRuntime().execute(workflow, parameters={"create": {"nmae": "B"}})
    assert count_rows(users, "users") == 0


def test_update_with_nothing_to_change_is_refused(users):
    created = run_node("UserCreateNode", {"name": "A", "email": "a@x"})
    with pytest.raises(NodeExecutionError) as info:
        run_node("UserUpdateNode", {"id": created["id"]})
    assert "nothing to update" in str(info.value.cause)


def test_soft_delete_on_a_model_without_it_is_refused(users):
    with pytest.raises(ValidationError, match="User has no soft delete"):
        build("UserDeleteNode", {"id": 1, "soft_delete": True})


def test_upsert_conflict_on_must_be_a_unique_key(users):
    with pytest.raises(ValidationError, match="a unique key of User"):
        build("UserUpsertNode", {"name": "A", "email": "a@x", "conflict_on": ["email"]})


def test_bulk_delete_refuses_an_empty_filter_without_confirmation(users):
    run_node("UserCreateNode", {"name": "A", "email": "a@x"})
    with pytest.raises(NodeExecutionError) as info:
        run_node("UserBulkDeleteNode", {"filter": {}})
    assert "confirm_all=True" in str(info.value.cause)
    assert count_rows(users, "users") == 1
    assert run_node("UserBulkDeleteNode", {"filter": {}, "confirm_all": True})["deleted"] == 1
