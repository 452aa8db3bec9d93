"""Serving apps on a free loopback port for the end-to-end tests, and the apps' models."""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from kailash import Node, NodeParameter
from tests.conftest import APP_ROLES, BACKENDS, fresh_database


@contextmanager
def served(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on 127.0.0.1 and a free port; yield its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Any], httpx.Client]]:
    """``serve(app)`` starts the app and returns an httpx client bound to it."""
    stack: list[Any] = []

    def start(app: Any, **headers: str) -> httpx.Client:
        context = served(app)
        url = context.__enter__()
        client = httpx.Client(base_url=url, headers=headers, timeout=30)
        stack.append((context, client))
        return client

    yield start
    for context, client in reversed(stack):
        client.close()
        context.__exit__(None, None, None)


def define_shop(db: Any) -> None:
    """The models the end-to-end tests serve."""

    @db.model
    class Product:
        name: str
        price: float
        sku: str | None = None
        active: bool = True
        released: dt.datetime | None = None

        __indexes__ = [{"name": "ix_products_sku", "fields": ["sku"], "unique": True}]


class TenantEchoNode(Node):
    """Reports the tenant it ran for."""

    parameters = {"tenant_id": NodeParameter("tenant_id", str), "note": NodeParameter("note", str)}

    def run(self, tenant_id: str | None = None, note: str = "") -> dict:
        return {"tenant_id": tenant_id, "note": note}


APP_MODULE = """
import json
import os
from typing import Optional

from dataflow import DataFlow
from kailash import Node, NodeParameter, WorkflowBuilder
from nexus import Nexus

db = DataFlow(os.environ["SHOP_DATABASE_URL"])


class TenantEchoNode(Node):
    parameters = {"tenant_id": NodeParameter("tenant_id", str)}

    def run(self, tenant_id=None):
        return {"tenant_id": tenant_id}


db.register_node(TenantEchoNode, "TenantEchoNode")


@db.model
class Product:
    name: str
    price: float
    sku: Optional[str] = None


auth = json.loads(os.environ.get("SHOP_AUTH") or "null")
nexus = Nexus("Shop", dataflow_integration=db, auth_config=auth,
              authentication_required=auth is not None)
workflow = WorkflowBuilder()
workflow.add_node("ProductCreateNode", "create",
                  {"name": "{{product_name}}", "price": "{{product_price}}"})
nexus.register("create_product", workflow)
"""


@pytest.fixture
def app_env(tmp_path) -> dict[str, str]:
    """An environment in which ``--app shopapp:nexus`` names a Nexus over a fresh SQLite file."""
    import os

    (tmp_path / "shopapp.py").write_text(APP_MODULE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "KAILASH_"))}
    env["SHOP_DATABASE_URL"] = f"sqlite:///{tmp_path / 'shop.db'}"
    env["NEXUS_APP"] = "shopapp:nexus"
    env["PYTHONPATH"] = str(tmp_path)
    return env


def run_nexus(env: dict[str, str], *args: str, ok: bool = True) -> Any:
    """Run the installed ``nexus`` command in ``env["PYTHONPATH"]``, where the app module is."""
    import subprocess

    done = subprocess.run(
        [nexus_command(), *args],
        env=env,
        cwd=env["PYTHONPATH"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def nexus_command() -> str:
    """The installed ``nexus`` console script of this environment."""
    import shutil
    import sys
    from pathlib import Path

    found = shutil.which("nexus", path=str(Path(sys.executable).parent))
    assert found, "the nexus console script is not installed (make setup)"
    return found


# -- one served multi-tenant model per backend, shared by a test module ---------------------

SECRET = "an-hs256-secret-of-32-bytes-at-least!"
ADMIN_KEY = "key-admin-0001"
#: An admin without a tenant (the header names one), an editor bound to tenant "acme", a viewer.
ORDER_AUTH = {
    "api_keys": {
        ADMIN_KEY: {"roles": ["admin"], "subject": "ops"},
        "key-editor-acme": {"roles": ["editor"], "tenant_id": "acme", "subject": "ed"},
        "key-viewer-0001": {"roles": ["viewer"], "subject": "vic"},
    },
    "jwt": {"secret": SECRET},
    "rbac_enabled": True,
}


def define_orders(db: Any) -> None:
    """A model with every option: tenants, soft delete, versions, an audit trail."""

    @db.model
    class Order:
        ref: str
        customer_id: int
        total: float
        status: str = "pending"

        __dataflow__ = {
            "multi_tenant": True,
            "soft_delete": True,
            "versioned": True,
            "audit_log": True,
        }
        __indexes__ = [{"name": "ux_orders_ref", "fields": ["ref"], "unique": True}]


def place_order_workflow(db: Any) -> Any:
    """Creates an order from its inputs, then lists the customer's orders."""
    from kailash import WorkflowBuilder

    workflow = WorkflowBuilder()
    # Classes, not names: another test's DataFlow may register an Order of its own.
    workflow.add_node(
        db.nodes["OrderCreateNode"],
        "create",
        {"ref": "{{ref}}", "customer_id": "{{customer_id}}", "total": "{{total}}"},
    )
    workflow.add_node(
        db.nodes["OrderListNode"], "mine", {"filter": {"customer_id": "{{customer_id}}"}}
    )
    workflow.add_connection("create", "result", "mine", "input")
    return workflow


@dataclass
class Served:
    db: Any
    nexus: Any
    url: str


@pytest.fixture(scope="module", params=[*BACKENDS, *APP_ROLES])
def orders_served(request, admin_engines, tmp_path_factory) -> Iterator[Served]:
    """The Order model (multi-tenant, soft delete, versions, audit) served by one Nexus per
    backend for the whole module; on PostgreSQL also as an application role, under row-level
    security."""
    from dataflow import DataFlow
    from nexus import Nexus

    folder = tmp_path_factory.mktemp("orders")
    with fresh_database(request.param, admin_engines, folder) as url:
        db = DataFlow(url)
        define_orders(db)
        nexus = Nexus("Orders", dataflow_integration=db, auth_config=ORDER_AUTH)
        nexus.register("place_order", place_order_workflow(db))
        try:
            with served(nexus.api) as base:
                yield Served(db, nexus, base)
        finally:
            db.close()


@pytest.fixture
def orders_api(orders_served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=orders_served.url, timeout=30) as client:
        yield client


def new_tenant() -> str:
    """A tenant no other test uses, so tests sharing a database never see each other's rows."""
    import uuid

    return f"t-{uuid.uuid4().hex[:10]}"


def acting_for(tenant: str | None, key: str = ADMIN_KEY) -> dict[str, str]:
    """Headers of a caller with an API key, acting for ``tenant`` through the header."""
    return {"X-API-Key": key, **({"X-Tenant-ID": tenant} if tenant else {})}


def bearer(claims: dict, ttl: int = 60) -> dict[str, str]:
    import jwt

    encoded = jwt.encode({"exp": int(time.time()) + ttl, **claims}, SECRET, algorithm="HS256")
    return {"Authorization": f"Bearer {encoded}"}


def mcp_calls(url: str, headers: dict, *calls: tuple[str, dict]) -> list[tuple[bool, Any]]:
    """Call tools over streamable HTTP with the SDK's client; (is_error, JSON body) per call."""
    import json

    import anyio
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    async def session() -> list[tuple[bool, Any]]:
        transport = streamable_http_client(
            f"{url}/mcp", http_client=create_mcp_http_client(headers=headers)
        )
        out = []
        async with Client(transport) as client:
            for name, args in calls:
                result = await client.call_tool(name, args)
                out.append((bool(result.is_error), json.loads(result.content[0].text)))
        return out

    return anyio.run(session)


@pytest.fixture
def cli(orders_served, monkeypatch) -> Callable[..., Any]:
    """Run the ``nexus`` command in this process against the served app (``--app orders_app``)."""
    import sys
    from types import SimpleNamespace

    from click.testing import CliRunner

    from nexus.channels.cli import main

    monkeypatch.setitem(sys.modules, "orders_app", SimpleNamespace(nexus=orders_served.nexus))

    def invoke(*args: str) -> Any:
        return CliRunner().invoke(main, ["--app", "orders_app:nexus", *args])

    return invoke
