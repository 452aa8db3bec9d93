"""Connections: one the server dropped is replaced before use."""

from __future__ import annotations

import pytest

from dataflow import DataFlow
from tests.dataflow.conftest import run_node


def _item(db: DataFlow) -> None:
    @db.model
    class Item:
        name: str


def _drop_connections(db: DataFlow, backend: str, admin_engines: dict) -> int:
    """End, from an admin connection, every server session the instance's pool holds."""
    from tests.conftest import _admin

    ask = "SELECT pg_backend_pid()" if backend == "postgresql" else "SELECT CONNECTION_ID()"
    with db.database.engine.connect() as conn:
        session = conn.exec_driver_sql(ask).scalar()
    end = "SELECT pg_terminate_backend({})" if backend == "postgresql" else "KILL {}"
    with _admin(admin_engines, backend).connect() as admin:
        admin.exec_driver_sql(end.format(session))
    return int(session)


def test_the_first_operation_after_the_server_dropped_connections_succeeds(
    db, backend, admin_engines
):
    if backend == "sqlite":
        pytest.skip("SQLite has no server to drop connections")
    _item(db)
    run_node("ItemCreateNode", {"name": "a"})
    assert run_node("ItemCountNode")["count"] == 1
    _drop_connections(db, backend, admin_engines)  # as a failover or an idle timeout does
    assert run_node("ItemCountNode")["count"] == 1
    assert run_node("ItemCreateNode", {"name": "b"})["name"] == "b"


def test_pre_ping_is_on_for_servers_and_can_be_switched_off(url, backend):
    on = DataFlow(url)
    off = DataFlow(url, pool_pre_ping=False)
    try:
        assert on.database.engine.pool._pre_ping is (backend != "sqlite")
        assert off.database.engine.pool._pre_ping is False
    finally:
        on.close()
        off.close()
