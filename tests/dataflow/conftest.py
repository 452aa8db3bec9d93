"""Helpers for running DataFlow nodes in the tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from kailash import LocalRuntime, NodeExecutionError, WorkflowBuilder


def run_node(node_type: str, params: dict[str, Any] | None = None, node_id: str = "n") -> dict:
    """Build and run a one-node workflow; return that node's output."""
    builder = WorkflowBuilder()
    builder.add_node(node_type, node_id, params or {})
    results, _ = LocalRuntime().execute(builder.build())
    return results[node_id]


def failure(node_type: str, params: dict[str, Any] | None = None) -> Exception:
    """Run a one-node workflow that must fail; return the node's error."""
    with pytest.raises(NodeExecutionError) as caught:
        run_node(node_type, params)
    return caught.value.cause


@contextmanager
def every_tenant(db: Any) -> Iterator[sa.Connection]:
    """A transaction of plain SQL on ``db``'s database that sees and changes every tenant's rows.

    On PostgreSQL an application role reaches rows of row-level security tables only of the
    tenant its transaction names; ``dataflow.all_tenants`` names them all.
    """
    with db.database.engine.begin() as conn:
        if db.database.dialect.row_security:
            conn.execute(sa.text("SELECT set_config('dataflow.all_tenants', 'on', true)"))
        yield conn


def count_rows(db: Any, table: str) -> int:
    """What a raw SELECT COUNT(*) sees, outside DataFlow's nodes, of every tenant's rows."""
    db.create_tables()
    with every_tenant(db) as conn:
        return conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


@pytest.fixture
def run():
    return run_node


@pytest.fixture(scope="module")
def crashes():
    """A child process that runs sagas and two-phase commits and SIGKILLs them on cue."""
    from tests.dataflow.crash_child import Launcher

    launcher = Launcher()
    yield launcher
    launcher.close()
