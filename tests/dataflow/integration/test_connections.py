"""Connections: a dropped one is replaced unseen; one that cannot be made says where and why."""

from __future__ import annotations

import socket
import traceback

import pytest
import sqlalchemy as sa

from dataflow import DatabaseConnectionError, DatabaseError, DataFlow
from tests.conftest import POSTGRES_URL, SERVERS, _driver_url, require
from tests.dataflow.conftest import failure, run_node

PASSWORD = "hunter2-not-the-password"


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


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connect_failure(url: str) -> DatabaseConnectionError:
    db = DataFlow(url)
    _item(db)
    try:
        with pytest.raises(DatabaseConnectionError) as caught:
            db.create_tables()
        assert isinstance(failure("ItemCountNode"), DatabaseConnectionError)
    finally:
        db.close()
    return caught.value


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
def test_an_unreachable_server_is_named_with_a_hint_and_never_the_password(scheme):
    pytest.importorskip("psycopg" if scheme == "postgresql" else "pymysql")
    port = closed_port()
    error = connect_failure(f"{scheme}://app:{PASSWORD}@127.0.0.1:{port}/shop")
    assert isinstance(error, DatabaseError) and isinstance(error, ConnectionError)
    title = "PostgreSQL" if scheme == "postgresql" else "MySQL/MariaDB"
    assert str(error).startswith(
        f"cannot connect to {title} at 127.0.0.1:{port}, database 'shop' as user 'app': "
    )
    assert "Connection refused" in str(error)
    assert "Is the server running" in str(error) and "DATABASE_URL" in str(error)
    assert error.sqlstate == "08001"
    assert PASSWORD not in "".join(traceback.format_exception(error))


def test_a_wrong_password_is_named_with_a_hint_and_never_the_password():
    require("mysql")  # root logs in without a password; one given is refused
    url = sa.engine.make_url(_driver_url(SERVERS["mysql"])).set(password=PASSWORD)
    error = connect_failure(url.render_as_string(hide_password=False))
    assert "Access denied for user" in str(error)
    assert "are the host, port, database, user name and password in DATABASE_URL" in str(error)
    assert PASSWORD not in "".join(traceback.format_exception(error))


def test_a_missing_database_is_named_with_a_hint():
    require("postgresql")
    url = sa.engine.make_url(_driver_url(POSTGRES_URL)).set(database="dataflow_no_such_db")
    error = connect_failure(url.render_as_string(hide_password=False))
    assert "database 'dataflow_no_such_db'" in str(error)
    assert 'database "dataflow_no_such_db" does not exist' in str(error)


def test_an_sqlite_file_that_cannot_be_opened_is_named_with_a_hint(tmp_path):
    path = tmp_path / "missing" / "folder" / "app.db"
    error = connect_failure(f"sqlite:///{path}")
    assert str(error).startswith(f"cannot connect to the SQLite database {path}: ")
    assert "Check that its folder exists" in str(error)
