"""The guide's "Enterprise Pattern" and "Enterprise Features Access" blocks, unchanged.

The first defines an Order model with every option and two indexes; the second adds four
nodes to a workflow, each a separate example, which are run one by one as their comments
describe, against the User model and the record 123 they assume.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from dataflow import NotFoundError, VersionConflictError
from kailash import NodeExecutionError
from tests.dataflow.conftest import run_node
from tests.examples.guide import RecordingBuilder, block, run_alone, run_block

PATTERN = "Enterprise Pattern"
ACCESS = "Enterprise Features Access"


def test_the_blocks_are_the_guides():
    assert "'audit_log': True         # Tracks all changes" in block(PATTERN)
    assert '"tenant_id": "tenant_123"  # Automatic isolation' in block(ACCESS)
    assert '"date_range": {"start": "2025-01-01", "end": "2025-01-31"}' in block(ACCESS)


def test_the_enterprise_pattern_gives_tenants_soft_delete_versions_audit_and_indexes(db):
    Order = run_block(PATTERN, {"db": db})["Order"]
    assert Order.__name__ == "Order"
    first = run_node("OrderCreateNode", {"customer_id": 7, "total": 99.5, "tenant_id": "acme"})
    assert (first["tenant_id"], first["version"], first["deleted_at"]) == ("acme", 1, None)
    assert run_node("OrderCountNode", {"tenant_id": "globex"}) == {"count": 0}
    run_node("OrderUpdateNode", {"id": first["id"], "status": "paid", "tenant_id": "acme"})
    run_node("OrderDeleteNode", {"id": first["id"], "tenant_id": "acme"})
    kept = run_node(
        "OrderReadNode", {"id": first["id"], "include_deleted": True, "tenant_id": "acme"}
    )
    assert kept["version"] == 3 and kept["deleted_at"] is not None
    trail = run_node("OrderAuditNode", {"record_id": first["id"], "tenant_id": "acme"})
    assert [r["action"] for r in trail["records"]] == ["create", "update", "soft_delete"]
    with db.database.engine.connect() as conn:
        found = {i["name"]: i["column_names"] for i in sa.inspect(conn).get_indexes("orders")}
    assert found["idx_tenant_status"] == ["tenant_id", "status"]
    assert found["idx_customer_date"] == ["customer_id", "created_at"]


@pytest.fixture
def users(db):
    @db.model
    class User:
        name: str
        email: str
        __dataflow__ = {
            "multi_tenant": True,
            "soft_delete": True,
            "versioned": True,
            "audit_log": True,
        }

    # The record 123 the examples update, delete and audit.
    run_node(
        "UserCreateNode",
        {"id": 123, "name": "Alice", "email": "alice@example.com", "tenant_id": "tenant_123"},
    )
    return db


def test_the_enterprise_features_do_what_their_comments_say(users, monkeypatch):
    workflow = RecordingBuilder()
    run_block(ACCESS, {"workflow": workflow})
    assert list(workflow.added) == ["create", "soft_delete", "update", "audit"]

    with users.tenant("tenant_123"):
        # Versioned updates: version 1 is current, so the update applies (in January 2025,
        # as far as the audit log's clock knows) and moves the record to version 2 ...
        january = dt.datetime(2025, 1, 15, 12, 0, tzinfo=dt.UTC)
        with monkeypatch.context() as clock:
            clock.setattr("dataflow.features.audit.utcnow", lambda: january)
            updated = run_alone(workflow, "update")
        assert (updated["name"], updated["version"]) == ("Alice Updated", 2)
        # ... after which a writer still holding version 1 is refused.
        with pytest.raises(NodeExecutionError) as stale:
            run_alone(workflow, "update")
        assert isinstance(stale.value.cause, VersionConflictError)
        assert stale.value.cause.current_version == 2

        # Soft delete: sets deleted_at and preserves the data.
        assert run_alone(workflow, "soft_delete") == {"id": 123, "deleted": True, "soft": True}
        with pytest.raises(NodeExecutionError) as hidden:
            run_node("UserReadNode", {"id": 123})
        assert isinstance(hidden.value.cause, NotFoundError)
        kept = run_node("UserReadNode", {"id": 123, "include_deleted": True})
        assert kept["name"] == "Alice Updated" and kept["deleted_at"] is not None

        # Multi-tenant create: the row belongs to tenant_123 alone.
        created = run_alone(workflow, "create")
        assert created["tenant_id"] == "tenant_123"

        # The audit trail: the update of record 123 made in January 2025.
        audit = run_alone(workflow, "audit")
        assert [(r["record_id"], r["action"]) for r in audit["records"]] == [(123, "update")]
        assert audit["records"][0]["changes"] == {"name": {"old": "Alice", "new": "Alice Updated"}}
        assert audit["records"][0]["created_at"] == january
    assert run_node("UserCountNode", {"tenant_id": "tenant_9"}) == {"count": 0}
    assert run_node("UserCountNode", {"tenant_id": "tenant_123"}) == {"count": 1}
