"""Backends for the one suite: SQLite always; PostgreSQL and MariaDB when reachable.

Each test on a server gets its own schema (PostgreSQL) or database (MariaDB), dropped after,
so runs never collide. Under ``CI=true`` an unreachable server fails the run.

Modules marked ``app_role`` also run on ``postgresql-app``: PostgreSQL reached as a role made
for the test, ``NOSUPERUSER NOBYPASSRLS``, that may only use and create in its schema, as the
README tells an application to run (a superuser passes row-level security by, which would
hide its failures).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

POSTGRES_URL = os.environ.get(
    "DATAFLOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("DATAFLOW_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SERVERS = {"postgresql": POSTGRES_URL, "mysql": MYSQL_URL}
#: Backends reached as an application role rather than as the administrator, by server.
APP_ROLES = {"postgresql-app": "postgresql"}


def _driver_url(url: str) -> str:
    parsed = sa.engine.make_url(url)
    driver = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}.get(parsed.drivername)
    return parsed.set(drivername=driver or parsed.drivername).render_as_string(hide_password=False)


_reachable: dict[str, str | None] = {}


def server_problem(backend: str) -> str | None:
    """None when the backend answers, else why not."""
    if backend not in _reachable:
        try:
            engine = sa.create_engine(_driver_url(SERVERS[backend]))
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            engine.dispose()
            _reachable[backend] = None
        except Exception as exc:  # any failure to connect means "not reachable"
            _reachable[backend] = f"{backend} at {SERVERS[backend]} is unreachable: {exc}"
    return _reachable[backend]


def require(backend: str) -> None:
    problem = server_problem(backend)
    if problem:
        if IN_CI:
            pytest.fail(f"{problem} (CI=true: reachable servers are required)")
        pytest.skip(problem)


@pytest.fixture(scope="session")
def admin_engines() -> Iterator[dict[str, sa.Engine]]:
    engines: dict[str, sa.Engine] = {}
    yield engines
    for engine in engines.values():
        engine.dispose()


def _admin(admin_engines: dict[str, sa.Engine], backend: str) -> sa.Engine:
    if backend not in admin_engines:
        admin_engines[backend] = sa.create_engine(
            _driver_url(SERVERS[backend]), isolation_level="AUTOCOMMIT"
        )
    return admin_engines[backend]


@contextmanager
def fresh_database(
    backend: str, admin_engines: dict[str, sa.Engine], folder: Path
) -> Iterator[str]:
    """A URL to an empty database of ``backend`` (SQLite: a file in ``folder``), dropped after."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'test.db'}"
        return
    server = APP_ROLES.get(backend, backend)
    require(server)
    name = f"dft_{uuid.uuid4().hex[:12]}"
    admin = _admin(admin_engines, server)
    base = sa.engine.make_url(_driver_url(SERVERS[server]))
    if server == "postgresql":
        url = base.update_query_dict({"options": f"-csearch_path={name}"})
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
            if backend in APP_ROLES:
                # What an application is given: its schema, to use and create its tables in.
                conn.execute(sa.text(f'CREATE ROLE "{name}" LOGIN NOSUPERUSER NOBYPASSRLS'))
                conn.execute(sa.text(f'GRANT USAGE, CREATE ON SCHEMA "{name}" TO "{name}"'))
                url = url.set(username=name, password=None)
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
                if backend in APP_ROLES:
                    conn.execute(sa.text(f'DROP OWNED BY "{name}"'))
                    conn.execute(sa.text(f'DROP ROLE "{name}"'))
    else:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f"DROP DATABASE `{name}`"))


@pytest.fixture
def fresh_url(request: pytest.FixtureRequest, tmp_path, admin_engines) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A URL to an empty database of the requested backend, dropped after the test."""
    with fresh_database(getattr(request, "param", "sqlite"), admin_engines, tmp_path) as url:
        yield url


@pytest.fixture
def admin_url(fresh_url: str) -> str:
    """``fresh_url``'s database reached as the server's administrator (not an app role)."""
    url = sa.engine.make_url(fresh_url)
    server = SERVERS.get(url.get_backend_name())
    if server is None:
        return fresh_url
    admin = sa.engine.make_url(server)
    return url.set(username=admin.username, password=admin.password).render_as_string(
        hide_password=False
    )


BACKENDS = ["sqlite", "postgresql", "mysql"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests that ask for ``db`` or ``url`` run once per backend, and those of ``app_role``
    modules also as an application role where a server has one."""
    if "fresh_url" in metafunc.fixturenames and "backend" in metafunc.fixturenames:
        marks = {m.name for m in metafunc.definition.iter_markers()}
        chosen = [
            b for b in BACKENDS if not ({f"{o}_only" for o in BACKENDS} - {f"{b}_only"}) & marks
        ]
        if "app_role" in marks:
            chosen += [app for app, server in APP_ROLES.items() if server in chosen]
        metafunc.parametrize("fresh_url", chosen, indirect=True, ids=chosen)


@pytest.fixture
def backend(fresh_url: str) -> str:
    return sa.engine.make_url(fresh_url).get_backend_name()


@pytest.fixture
def url(fresh_url: str, backend: str) -> str:
    return fresh_url


@pytest.fixture
def db(url: str) -> Iterator[object]:
    from dataflow import DataFlow

    instance = DataFlow(url)
    yield instance
    instance.close()


@pytest.fixture(autouse=True)
def _own_node_types() -> Iterator[None]:
    """Node types a test's DataFlow instances define leave the registry with the test.

    A DataFlow keeps its node types registered until it is closed; tests that leave one open
    (as the guide's blocks do) must not make the next test's names ambiguous.
    """
    from kailash.nodes.registry import default_registry

    spaced = dict(default_registry._spaced)
    yield
    default_registry._spaced = spaced
