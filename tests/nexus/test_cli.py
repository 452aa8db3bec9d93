"""The installed ``nexus`` command, run in a subprocess against the app it is pointed at."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import httpx
import pytest

from tests.nexus.conftest import nexus_command
from tests.nexus.conftest import run_nexus as run


def test_the_guides_execute_command_creates_a_record(app_env):
    out = run(app_env, "execute", "ProductCreateNode", "--name", "Test", "--price", "100", "--json")
    result = json.loads(out.stdout)["result"]
    assert (result["name"], result["price"]) == ("Test", 100)


def test_the_tenant_option_reaches_the_nodes_that_take_a_tenant(app_env):
    out = run(app_env, "--tenant", "acme", "execute", "TenantEchoNode", "--json")
    assert json.loads(out.stdout)["result"] == {"tenant_id": "acme"}


def test_resource_commands_create_list_get_update_delete(app_env):
    made = json.loads(
        run(app_env, "products", "create", "--name", "Lamp", "--price", "9.5", "--json").stdout
    )
    pk = str(made["id"])
    run(app_env, "products", "create", "--name", "Desk", "--price", "120")
    table = run(app_env, "products", "list", "--sort", "name").stdout.splitlines()
    assert table[0].split()[:3] == ["id", "name", "price"]
    assert [line.split()[1] for line in table[2:4]] == ["Desk", "Lamp"]
    assert table[-1] == "2 record(s)"
    filtered = json.loads(
        run(
            app_env,
            "products",
            "list",
            "--filter",
            '{"price": {"$gt": 10}}',
            "--fields",
            "name,price",
            "--json",
        ).stdout
    )
    assert filtered["records"] == [{"name": "Desk", "price": 120.0}]
    shown = run(app_env, "products", "get", pk).stdout
    assert "Lamp" in shown and "9.5" in shown
    run(app_env, "products", "update", pk, "--price", "11")
    assert json.loads(run(app_env, "products", "get", pk, "--json").stdout)["price"] == 11
    run(app_env, "products", "delete", pk)
    gone = run(app_env, "products", "get", pk, ok=False)
    assert gone.returncode == 1 and "404 not_found" in gone.stderr


def test_refusals_exit_non_zero_naming_the_problem(app_env):
    missing = run(app_env, "products", "create", "--name", "x", ok=False)
    assert missing.returncode == 1 and "'price'" in missing.stderr
    not_json = run(app_env, "products", "list", "--filter", "{oops", ok=False)
    assert not_json.returncode == 2 and "not valid JSON" in not_json.stderr
    no_app = run({**app_env, "NEXUS_APP": ""}, "products", "list", ok=False)
    assert no_app.returncode == 2 and "--app" in no_app.stderr


def test_help_is_generated_from_the_models(app_env):
    top = run(app_env, "--help").stdout
    assert "products" in top and "execute" in top and "serve" in top
    create = run(app_env, "products", "create", "--help").stdout
    assert (
        "--name TEXT" in create
        and "--price FLOAT" in create
        and "price: number, required" in create
    )
    assert "create_product" in run(app_env, "execute", "--help").stdout


def test_workflow_placeholders_are_filled_from_options(app_env):
    out = run(
        app_env,
        "execute",
        "create_product",
        "--product-name",
        "Lamp",
        "--product-price",
        "19.99",
        "--json",
    )
    assert json.loads(out.stdout)["results"]["create"]["price"] == 19.99


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served_app(app_env):
    """``nexus serve`` in a subprocess, with API keys for an admin and a viewer."""
    env = {
        **app_env,
        "SHOP_AUTH": json.dumps(
            {
                "api_keys": {
                    "key-admin-0001": {"roles": ["admin"]},
                    "key-viewer-0001": {"roles": ["viewer"]},
                },
                "rbac_enabled": True,
            }
        ),
    }
    port = free_port()
    server = subprocess.Popen(
        [nexus_command(), "serve", "--port", str(port)],
        env=env,
        cwd=env["PYTHONPATH"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise RuntimeError(f"nexus serve did not start: {server.stderr.read().decode()}")
        time.sleep(0.1)
    yield env, url
    server.terminate()
    server.wait(10)


def test_cli_over_http_is_held_to_the_same_auth(served_app):
    env, url = served_app
    anonymous = run(env, "--url", url, "products", "list", ok=False)
    assert anonymous.returncode == 1 and "401" in anonymous.stderr
    viewer = ["--url", url, "--api-key", "key-viewer-0001"]
    create = ["products", "create", "--name", "x", "--price", "1"]
    refused = run(env, *viewer, *create, ok=False)
    assert refused.returncode == 1 and "403 forbidden" in refused.stderr
    admin = ["--url", url, "--api-key", "key-admin-0001"]
    node = ["execute", "ProductCreateNode", "--name", "Test", "--price", "100", "--json"]
    assert json.loads(run(env, *admin, *node).stdout)["result"]["name"] == "Test"
    listed = run(env, *viewer, "products", "list", "--json")
    assert [r["name"] for r in json.loads(listed.stdout)["records"]] == ["Test"]
