"""Serving apps on a free loopback port for the end-to-end tests, and the apps' models."""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn

from kailash import Node, NodeParameter


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
