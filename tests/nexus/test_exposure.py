"""An API without authentication is open: served on loopback only, with a warning, unless asked."""

from __future__ import annotations

import logging
import socket
import subprocess
import time

import httpx
import pytest

from dataflow import DataFlow
from kailash.servers.gateway import create_gateway
from kailash.servers.gateway.errors import GatewayConfigurationError
from nexus import Nexus
from tests.nexus.conftest import define_shop, nexus_command, run_nexus


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def shop(tmp_path):
    db = DataFlow(f"sqlite:///{tmp_path / 'shop.db'}")
    define_shop(db)
    yield db
    db.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.org"])
def test_an_open_api_refuses_to_serve_beyond_loopback(shop, host, caplog):
    with pytest.raises(GatewayConfigurationError, match="allow_anonymous=True") as caught:
        Nexus("Shop", dataflow_integration=shop).run(host=host)
    assert f"refusing to serve on {host} without authentication" in str(caught.value)
    with pytest.raises(GatewayConfigurationError, match="allow_anonymous=True"):
        create_gateway("Shop", dataflow_integration=shop).run(host=host)


def test_the_serve_command_refuses_an_open_api_beyond_loopback(app_env):
    done = run_nexus(app_env, "serve", "--host", "0.0.0.0", ok=False)
    assert done.returncode != 0
    assert "refusing to serve on 0.0.0.0 without authentication" in done.stderr
    assert "Traceback" not in done.stderr


def serving(env: dict, *args: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    server = subprocess.Popen(
        [nexus_command(), "serve", "--port", str(port), *args],
        env=env,
        cwd=env["PYTHONPATH"],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return server, port
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise AssertionError(f"nexus serve did not start: {server.communicate()[1]}")


def test_an_open_api_serves_loopback_and_logs_a_warning(app_env):
    server, port = serving(app_env)
    try:
        made = httpx.post(f"http://127.0.0.1:{port}/api/products", json={"name": "x", "price": 1})
        assert made.status_code == 201
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    assert "the API is open: no authentication is configured" in stderr


def test_an_api_with_auth_serves_any_address_without_the_warning(shop, caplog):
    from kailash.servers.gateway.server import check_exposure

    nexus = Nexus(
        "Shop",
        dataflow_integration=shop,
        auth_config={"api_keys": {"key-admin-0001": {"roles": ["admin"]}}},
        authentication_required=True,
    )
    with caplog.at_level(logging.WARNING, logger="kailash.gateway"):
        check_exposure(nexus.service.auth, "0.0.0.0", False, {}, "Shop")
        open_on_purpose = Nexus("Open", dataflow_integration=shop, allow_anonymous=True)
        check_exposure(
            open_on_purpose.service.auth, "0.0.0.0", open_on_purpose.allow_anonymous, {}, "Open"
        )
    assert [r.getMessage()[:40] for r in caplog.records] == [
        "Open: the API is open: no authentication"
    ]
    assert "allow_anonymous=True" in caplog.records[0].getMessage()
