"""PostgreSQL row-level security: tenant tables stay isolated even for SQL that skips DataFlow.

Row-level security never binds a superuser; these tests create roles of their own (unique
names, dropped afterwards) that it does bind, as the administrator of the test's schema.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from dataflow import DataFlow
from tests.dataflow.conftest import run_node

pytestmark = [pytest.mark.postgresql_only, pytest.mark.app_role]


def define(db: DataFlow) -> DataFlow:
    @db.model
    class Customer:
        name: str
        __dataflow__ = {"multi_tenant": True, "audit_log": True}

    return db


@pytest.fixture
def roles(url: str, admin_url: str) -> Iterator[dict[str, str]]:
    """Two plain roles on the test's schema: ``app`` may create tables, ``other`` may not."""
    admin = sa.create_engine(sa.engine.make_url(admin_url), isolation_level="AUTOCOMMIT")
    schema = sa.engine.make_url(url).query["options"].removeprefix("-csearch_path=")
    names = {kind: f"dft_{kind}_{uuid.uuid4().hex[:10]}" for kind in ("app", "other")}
    with admin.connect() as conn:
        for name in names.values():
            conn.execute(sa.text(f'CREATE ROLE "{name}" LOGIN NOSUPERUSER NOBYPASSRLS'))
            conn.execute(sa.text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{name}"'))
        conn.execute(sa.text(f'GRANT CREATE ON SCHEMA "{schema}" TO "{names["app"]}"'))
    try:
        yield {**names, "schema": schema}
    finally:
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(sa.text(f'REASSIGN OWNED BY "{name}" TO CURRENT_USER'))
                conn.execute(sa.text(f'DROP OWNED BY "{name}"'))
                conn.execute(sa.text(f'DROP ROLE "{name}"'))
        admin.dispose()


def as_role(url: str, role: str) -> str:
    return sa.engine.make_url(url).set(username=role).render_as_string(hide_password=False)


def rows_seen(engine: sa.Engine, tenant: str | None) -> list[tuple[str, str]]:
    with engine.begin() as conn:
        if tenant is not None:
            conn.execute(
                sa.text("SELECT set_config('dataflow.tenant_id', :t, true)"), {"t": tenant}
            )
        found = conn.execute(sa.text("SELECT tenant_id, name FROM customers ORDER BY id"))
        return [tuple(r) for r in found]


def test_an_app_role_owning_the_tables_is_bound_by_the_policy_it_works_under(url, roles):
    db = define(DataFlow(as_role(url, roles["app"])))
    for tenant, name in (("t1", "ann"), ("t2", "bob")):
        run_node("CustomerCreateNode", {"name": name, "tenant_id": tenant})
    assert [r["name"] for r in run_node("CustomerListNode", {"tenant_id": "t2"})["records"]] == [
        "bob"
    ]
    audit = run_node("CustomerAuditNode", {"tenant_id": "t1"})["records"]
    assert [(r["action"], r["tenant_id"]) for r in audit] == [("create", "t1")]
    # The same role, writing SQL of its own: FORCE makes the policy bind the tables' owner.
    owner = db.database.engine
    assert rows_seen(owner, None) == []
    assert rows_seen(owner, "t1") == [("t1", "ann")]
    with owner.connect() as conn:
        flags = conn.execute(
            sa.text(
                "SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
                "WHERE oid = 'customers'::regclass"
            )
        ).one()
    assert tuple(flags) == (True, True)
    db.close()


def test_raw_sql_of_a_non_owner_role_sees_and_changes_only_the_bound_tenant(url, roles):
    db = define(DataFlow(url))
    for tenant in ("t1", "t1", "t2"):
        run_node("CustomerCreateNode", {"name": f"of {tenant}", "tenant_id": tenant})
    schema, role = roles["schema"], roles["other"]
    with db.database.engine.begin() as conn:
        for grant in ("SELECT, INSERT, UPDATE, DELETE ON ALL TABLES", "USAGE ON ALL SEQUENCES"):
            conn.execute(sa.text(f'GRANT {grant} IN SCHEMA "{schema}" TO "{role}"'))
    other = sa.create_engine(as_role(url, roles["other"]))
    assert rows_seen(other, None) == []
    assert rows_seen(other, "t1") == [("t1", "of t1"), ("t1", "of t1")]
    with other.begin() as conn:
        conn.execute(sa.text("SELECT set_config('dataflow.tenant_id', 't1', true)"))
        changed = conn.execute(sa.text("UPDATE customers SET name = 'mine now'")).rowcount
        gone = conn.execute(sa.text("DELETE FROM customers WHERE tenant_id = 't2'")).rowcount
        audit = conn.execute(sa.text("SELECT COUNT(*) FROM dataflow_audit_log")).scalar_one()
    assert (changed, gone, audit) == (2, 0, 2)
    with pytest.raises(sa.exc.ProgrammingError, match="row-level security"), other.begin() as conn:
        conn.execute(sa.text("SELECT set_config('dataflow.tenant_id', 't1', true)"))
        conn.execute(
            sa.text(
                "INSERT INTO customers (name, tenant_id, created_at, updated_at) "
                "VALUES ('planted', 't2', now(), now())"
            )
        )
    names = [r["name"] for r in run_node("CustomerListNode", {"tenant_id": "t2"})["records"]]
    assert names == ["of t2"]
    other.dispose()
    db.close()
