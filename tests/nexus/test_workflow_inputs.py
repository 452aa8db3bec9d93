"""A registered workflow takes its declared inputs, typed, and nothing else, on every channel."""

from __future__ import annotations

import httpx
import pytest

from dataflow import DataFlow
from kailash import WorkflowBuilder
from kailash.servers.gateway.errors import GatewayConfigurationError
from nexus import Nexus
from tests.nexus.conftest import mcp_calls

PURGER_KEY = "key-purger-0001"
AUTH = {
    "api_keys": {
        "key-admin-0001": {"roles": ["admin"]},
        PURGER_KEY: {"roles": ["purger"]},
    },
    "roles": {
        "admin": "*",
        "purger": {"purge": ["execute"], "public_accounts": ["execute"], "by_token": ["execute"]},
    },
}
ACCOUNTS = [
    {"email": "ann@x", "api_token": "t-ann", "secret_note": "ann's", "public": True},
    {"email": "bob@x", "api_token": "t-bob", "secret_note": "bob's", "public": False},
    {"email": "nobody@x", "api_token": "t-nobody", "secret_note": "none", "public": True},
]


def define_accounts(db):
    @db.model
    class Account:
        email: str
        api_token: str
        secret_note: str
        public: bool = True


def purge_workflow(db, built: bool):
    workflow = WorkflowBuilder()
    workflow.add_node(db.nodes["AccountBulkDeleteNode"], "purge", {"filter": {"email": "nobody@x"}})
    return workflow.build() if built else workflow


def public_accounts_workflow(db):
    workflow = WorkflowBuilder()
    workflow.add_node(
        db.nodes["AccountListNode"],
        "list",
        {"filter": {"public": True}, "fields": ["email"], "sort": ["email"]},
    )
    return workflow.build()


def by_token_workflow(db):
    workflow = WorkflowBuilder()
    workflow.add_node(
        db.nodes["AccountListNode"],
        "find",
        {"filter": {"api_token": "{{token}}"}, "fields": ["email"]},
    )
    return workflow


@pytest.fixture(params=["built", "builder"])
def served_accounts(request, tmp_path, serve):
    db = DataFlow(f"sqlite:///{tmp_path / 'accounts.db'}")
    define_accounts(db)
    nexus = Nexus("Accounts", dataflow_integration=db, auth_config=AUTH)
    nexus.register("purge", purge_workflow(db, built=request.param == "built"))
    nexus.register("public_accounts", public_accounts_workflow(db))
    nexus.register("by_token", by_token_workflow(db))
    admin = serve(nexus.api, **{"X-API-Key": "key-admin-0001"})
    assert admin.post(
        "/api/accounts/bulk", json={"operation": "create", "data": ACCOUNTS}
    ).is_success
    with httpx.Client(base_url=admin.base_url, headers={"X-API-Key": PURGER_KEY}) as purger:
        yield db, admin, purger
    db.close()


def emails(admin) -> list[str]:
    return [
        r["email"] for r in admin.get("/api/accounts", params={"sort": "email"}).json()["records"]
    ]


def test_a_caller_cannot_override_a_workflow_param_over_rest(served_accounts):
    _, admin, purger = served_accounts
    everything = {"filter": {}, "confirm_all": True}
    assert (
        purger.post("/api/accounts/bulk", json={"operation": "delete", **everything}).status_code
        == 403
    )

    out = purger.post("/api/workflows/purge/execute", json={"purge": everything})

    assert out.status_code == 422, out.text
    assert out.json()["field"] == "purge"
    assert "purge" in out.json()["message"]
    assert emails(admin) == ["ann@x", "bob@x", "nobody@x"]
    ran = purger.post("/api/workflows/purge/execute", json={})
    assert ran.json()["results"]["purge"]["deleted"] == 1  # the author's filter, as written
    assert emails(admin) == ["ann@x", "bob@x"]


def test_a_caller_cannot_widen_a_public_list_over_rest(served_accounts):
    _, _, purger = served_accounts
    out = purger.post("/api/workflows/public_accounts/execute", json={"list": {"filter": {}}})
    assert (out.status_code, out.json()["field"]) == (422, "list")
    flat = purger.post("/api/workflows/public_accounts/execute", json={"fields": None})
    assert (flat.status_code, flat.json()["field"]) == (422, "fields")
    listed = purger.post("/api/workflows/public_accounts/execute", json={})
    assert listed.json()["results"]["list"]["records"] == [
        {"email": "ann@x"},
        {"email": "nobody@x"},
    ]


def test_a_caller_cannot_override_a_workflow_param_over_mcp(served_accounts):
    _, admin, purger = served_accounts
    calls = mcp_calls(
        str(purger.base_url),
        {"X-API-Key": PURGER_KEY},
        ("purge", {"purge": {"filter": {}, "confirm_all": True}}),
        ("public_accounts", {"list": {"filter": {}, "fields": None}}),
        ("public_accounts", {}),
    )
    (purge_error, purge), (list_error, widened), (_, listed) = calls
    assert purge_error and (purge["status"], purge["field"]) == (422, "purge")
    assert list_error and (widened["status"], widened["field"]) == (422, "list")
    assert listed["results"]["list"]["records"] == [{"email": "ann@x"}, {"email": "nobody@x"}]
    assert emails(admin) == ["ann@x", "bob@x", "nobody@x"]


def test_an_operator_object_for_a_filter_placeholder_is_422_over_rest_and_mcp(served_accounts):
    _, _, purger = served_accounts
    injected = {"token": {"$ne": ""}}
    out = purger.post("/api/workflows/by_token/execute", json=injected)
    assert (out.status_code, out.json()["field"]) == (422, "token")
    found = purger.post("/api/workflows/by_token/execute", json={"token": "t-bob"})
    assert found.json()["results"]["find"]["records"] == [{"email": "bob@x"}]

    (error, body), (_, ok) = mcp_calls(
        str(purger.base_url),
        {"X-API-Key": PURGER_KEY},
        ("by_token", injected),
        ("by_token", {"token": "t-ann"}),
    )
    assert error and (body["status"], body["field"]) == (422, "token")
    assert ok["results"]["find"]["records"] == [{"email": "ann@x"}]


def test_workflow_schemas_show_the_inputs_and_their_types(served_accounts):
    _, admin, _ = served_accounts
    schemas = admin.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["ByTokenInputs"]["properties"]["token"]["type"] == "string"
    assert schemas["ByTokenInputs"]["additionalProperties"] is False
    assert schemas["PurgeInputs"].get("properties", {}) == {}


@pytest.fixture
def accounts_db(tmp_path):
    db = DataFlow(f"sqlite:///{tmp_path / 'accounts.db'}")
    define_accounts(db)
    yield db
    db.close()


def test_declared_parameters_are_the_only_run_parameters_a_caller_sets(accounts_db, serve):
    db = accounts_db
    nexus = Nexus("Accounts", dataflow_integration=db)
    nexus.register("page", public_accounts_workflow(db), inputs={"limit": "list.limit"})
    api = serve(nexus.api)
    api.post("/api/accounts/bulk", json={"operation": "create", "data": ACCOUNTS})

    one = api.post("/api/workflows/page/execute", json={"limit": 1})
    assert one.json()["results"]["list"]["records"] == [{"email": "ann@x"}]
    every = api.post("/api/workflows/page/execute", json={})
    assert len(every.json()["results"]["list"]["records"]) == 2
    wrong = api.post("/api/workflows/page/execute", json={"limit": "many"})
    assert (wrong.status_code, wrong.json()["field"]) == (422, "limit")
    other = api.post("/api/workflows/page/execute", json={"limit": 1, "offset": 1})
    assert (other.status_code, other.json()["field"]) == (422, "offset")
    inputs = api.get("/openapi.json").json()["components"]["schemas"]["PageInputs"]
    assert inputs["properties"]["limit"]["type"] == "integer"
    assert "required" not in inputs


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"limit": "nowhere.limit"}, "node of the workflow"),
        ({"limit": "list.limt"}, "no parameter 'limt'"),
        ({"limit": "list"}, "'node_id.parameter'"),
        ({"who": "list.tenant_id"}, "no parameter 'tenant_id' a caller may set"),
        ({"bad name": "list.limit"}, "must be an identifier"),
    ],
)
def test_declared_parameters_are_checked_at_registration(accounts_db, inputs, message):
    nexus = Nexus("Accounts", dataflow_integration=accounts_db)
    with pytest.raises(GatewayConfigurationError, match=message):
        nexus.register("page", public_accounts_workflow(accounts_db), inputs=inputs)


def test_a_placeholder_is_typed_by_the_field_its_filter_compares(accounts_db):
    nexus = Nexus("Accounts", dataflow_integration=accounts_db)
    workflow = WorkflowBuilder()
    workflow.add_node(
        accounts_db.nodes["AccountListNode"],
        "find",
        {
            "filter": {
                "public": "{{public}}",
                "email": {"$in": "{{emails}}", "$ne": "{{not_email}}"},
                "$or": [{"api_token": {"$like": "{{pattern}}"}}],
            },
            "limit": "{{limit}}",
        },
    )
    nexus.register("find", workflow)
    schema = nexus.service.executable("find").schema.model_json_schema()
    kinds = {name: prop.get("type") for name, prop in schema["properties"].items()}
    assert kinds == {
        "public": "boolean",
        "emails": "array",
        "not_email": "string",
        "pattern": "string",
        "limit": "integer",
    }
    assert schema["properties"]["emails"]["items"]["type"] == "string"


def test_the_cli_offers_a_workflows_inputs_and_no_other_option(accounts_db, monkeypatch):
    import json
    import sys
    from types import SimpleNamespace

    from click.testing import CliRunner

    from kailash import LocalRuntime
    from nexus.channels.cli import main

    db = accounts_db
    rows = WorkflowBuilder()
    rows.add_node(db.nodes["AccountBulkCreateNode"], "rows", {"data": ACCOUNTS})
    LocalRuntime().execute(rows.build())
    nexus = Nexus("Accounts", dataflow_integration=db)
    nexus.register("page", public_accounts_workflow(db), inputs={"limit": "list.limit"})
    monkeypatch.setitem(sys.modules, "accounts_app", SimpleNamespace(nexus=nexus))
    app = ["--app", "accounts_app:nexus", "execute", "page"]

    widened = CliRunner().invoke(main, [*app, "--filter", "{}"])
    assert widened.exit_code != 0 and "No such option '--filter'" in widened.output
    one = CliRunner().invoke(main, [*app, "--limit", "1", "--json"])
    assert json.loads(one.output)["results"]["list"]["records"] == [{"email": "ann@x"}]
