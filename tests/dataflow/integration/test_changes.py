"""Change notifications: each committed write is told once, after its commit; rollbacks never."""

from __future__ import annotations

import pytest

from kailash import LocalRuntime, NodeExecutionError
from tests.dataflow.conftest import run_node
from tests.dataflow.integration.test_transaction_scope import Boom, define_books, scoped


@pytest.fixture
def heard(db):
    define_books(db)

    @db.model
    class Note:
        text: str
        __dataflow__ = {"multi_tenant": True, "soft_delete": True}

    db.create_tables()
    changes: list[dict] = []
    unsubscribe = db.subscribe_changes(changes.append)
    yield changes
    unsubscribe()


def summary(changes: list[dict]) -> list[tuple]:
    return [(c["model"], c["action"], c["ids"], c["count"], c["tenant_id"]) for c in changes]


def test_every_write_node_tells_what_it_wrote(heard):
    book = run_node("BookCreateNode", {"title": "Dune"})["id"]
    run_node("BookUpdateNode", {"id": book, "title": "Dune II"})
    emma = run_node("BookUpsertNode", {"title": "Emma"})["id"]
    run_node("BookBulkUpsertNode", {"data": [{"title": "Emma"}], "conflict_on": ["title"]})
    run_node("BookDeleteNode", {"id": book})
    run_node("AuthorBulkCreateNode", {"data": [{"name": "A"}, {"name": "B"}]})
    run_node(
        "AuthorBulkUpdateNode", {"filter": {"name": {"$in": ["A", "B"]}}, "update": {"name": "C"}}
    )
    run_node("AuthorBulkUpdateNode", {"filter": {"name": "nobody"}, "update": {"name": "D"}})
    run_node("AuthorBulkDeleteNode", {"filter": {}, "confirm_all": True})
    note = run_node("NoteCreateNode", {"text": "hi", "tenant_id": "t1"})["id"]
    run_node("NoteDeleteNode", {"id": note, "tenant_id": "t1"})
    run_node("NoteRestoreNode", {"id": note, "tenant_id": "t1"})
    run_node("NoteBulkDeleteNode", {"filter": {}, "confirm_all": True, "tenant_id": "t1"})
    assert summary(heard) == [
        ("Book", "create", [book], 1, None),
        ("Book", "update", [book], 1, None),
        ("Book", "upsert", [emma], 1, None),
        ("Book", "bulk_upsert", None, 1, None),
        ("Book", "delete", [book], 1, None),
        ("Author", "bulk_create", None, 2, None),
        ("Author", "bulk_update", None, 2, None),  # a write that changed nothing is not told
        ("Author", "bulk_delete", None, 2, None),
        ("Note", "create", [note], 1, "t1"),
        ("Note", "soft_delete", [note], 1, "t1"),
        ("Note", "restore", [note], 1, "t1"),
        ("Note", "bulk_soft_delete", None, 1, "t1"),
    ]
    assert all(c["at"].endswith("+00:00") for c in heard)


def test_a_scope_tells_its_changes_at_commit_and_a_rollback_none(db, heard):
    with pytest.raises(NodeExecutionError):
        LocalRuntime().execute(scoped((Boom, "boom", {})))
    assert heard == []
    with pytest.raises(RuntimeError), db.transaction():
        run_node("AuthorCreateNode", {"name": "Ann"})
        raise RuntimeError("changed my mind")
    assert heard == []
    with db.transaction():
        run_node("AuthorCreateNode", {"name": "Bea"})
        with pytest.raises(RuntimeError), db.transaction():  # a savepoint, rolled back
            run_node("BookCreateNode", {"title": "Gone"})
            raise RuntimeError("not this one")
        assert heard == []  # nothing before the commit
    assert summary(heard) == [("Author", "create", [heard[0]["ids"][0]], 1, None)]
    heard.clear()
    results, _ = LocalRuntime().execute(scoped())
    assert [(c["model"], c["ids"]) for c in heard] == [
        ("Author", [results["author"]["id"]]),
        ("Book", [results["book"]["id"]]),
    ]


def test_bulk_ids_are_told_when_returned_and_a_failing_listener_stops_nothing(db, heard):
    def broken(change: dict) -> None:
        raise RuntimeError("listener bug")

    unsubscribe = db.subscribe_changes(broken)
    out = run_node(
        "BookBulkCreateNode", {"data": [{"title": "A"}, {"title": "B"}], "return_ids": True}
    )
    unsubscribe()
    assert heard[0]["ids"] == out["ids"]
    run_node("BookCreateNode", {"title": "C"})
    assert len(heard) == 2
