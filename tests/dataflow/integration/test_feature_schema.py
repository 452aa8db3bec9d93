"""The columns and indexes the model options add, on new and on existing tables."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from dataflow import DataFlow, MigrationError
from tests.dataflow.conftest import run_node


def indexes(db: DataFlow, table: str) -> dict[str, tuple[list[str], bool, bool]]:
    """Index name -> (columns, unique, partial)."""
    with db.database.engine.connect() as conn:
        found = sa.inspect(conn).get_indexes(table)
    dialect = db.database.engine.dialect.name
    return {
        i["name"]: (
            i["column_names"],
            bool(i["unique"]),
            (i.get("dialect_options") or {}).get(f"{dialect}_where") is not None,
        )
        for i in found
    }


def columns(db: DataFlow, table: str) -> dict[str, bool]:
    """Column name -> nullable."""
    with db.database.engine.connect() as conn:
        return {c["name"]: c["nullable"] for c in sa.inspect(conn).get_columns(table)}


def test_the_options_add_their_columns_and_indexes(db, backend):
    @db.model
    class Order:
        customer_id: int
        status: str = "pending"
        ref: str = ""
        __dataflow__ = {"multi_tenant": True, "soft_delete": True, "versioned": True}
        __indexes__ = [
            {"name": "idx_tenant_status", "fields": ["tenant_id", "status"]},
            {"name": "idx_customer_date", "fields": ["customer_id", "created_at"]},
            {"name": "ux_orders_ref", "fields": ["ref"], "unique": True},
        ]

    db.create_tables()
    cols = columns(db, "orders")
    assert {n: cols[n] for n in ("tenant_id", "deleted_at", "version")} == {
        "tenant_id": False,
        "deleted_at": True,
        "version": False,
    }
    found = indexes(db, "orders")
    partial = backend != "mysql"
    assert found["idx_tenant_status"] == (["tenant_id", "status"], False, False)
    assert found["idx_customer_date"] == (["customer_id", "created_at"], False, False)
    assert found["ux_orders_ref"] == (["tenant_id", "ref"], True, partial)
    assert found["ix_orders_tenant_id"] == (["tenant_id", "id"], True, False)  # see relations


def test_an_existing_table_gains_soft_delete_versions_and_an_audit_log(url, backend):
    first = DataFlow(url)

    @first.model
    class Doc:
        slug: str
        __indexes__ = [{"name": "ux_docs_slug", "fields": ["slug"], "unique": True}]

    kept = run_node("DocCreateNode", {"slug": "a"})
    first.close()

    second = DataFlow(url)

    @second.model
    class Doc:  # noqa: F811 - the same model, now with options
        slug: str
        __dataflow__ = {"soft_delete": True, "versioned": True, "audit_log": True}
        __indexes__ = [{"name": "ux_docs_slug", "fields": ["slug"], "unique": True}]

    done = second.create_tables()
    assert "added column docs.deleted_at" in done and "added column docs.version" in done
    assert ("recreated index ux_docs_slug" in done) == (backend != "mysql")
    assert "created table dataflow_audit_log" in done
    read = run_node("DocReadNode", {"id": kept["id"]})
    assert (read["version"], read["deleted_at"]) == (1, None)
    run_node("DocDeleteNode", {"id": kept["id"]})
    if backend != "mysql":  # the key is free again once its row is deleted
        assert run_node("DocCreateNode", {"slug": "a"})["version"] == 1
    assert second.create_tables() == []
    second.close()


def test_an_existing_table_cannot_silently_gain_tenants(url):
    first = DataFlow(url)

    @first.model
    class Note:
        text: str

    run_node("NoteCreateNode", {"text": "whose?"})
    first.close()

    second = DataFlow(url)

    @second.model
    class Note:  # noqa: F811
        text: str
        __dataflow__ = {"multi_tenant": True}

    with pytest.raises(MigrationError, match=r"notes\.tenant_id.*'multi_tenant' option adds it"):
        second.create_tables()
    second.close()
