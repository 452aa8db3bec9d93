"""Optimistic locking: every write adds one to ``version``; a stale version is refused."""

from __future__ import annotations

import threading

import pytest

from dataflow import DataFlow, NotFoundError, ValidationError, VersionConflictError
from kailash import LocalRuntime, NodeExecutionError, WorkflowBuilder
from tests.dataflow.conftest import failure, run_node


@pytest.fixture
def docs(db):
    @db.model
    class Doc:
        slug: str
        title: str
        __dataflow__ = {"versioned": True}
        __indexes__ = [{"name": "ux_docs_slug", "fields": ["slug"], "unique": True}]

    return db


def version_of(doc_id: int) -> int:
    return run_node("DocReadNode", {"id": doc_id})["version"]


def test_a_record_starts_at_version_one_and_every_write_adds_one(docs):
    doc = run_node("DocCreateNode", {"slug": "a", "title": "A"})
    assert doc["version"] == 1
    writes = [
        ("DocUpdateNode", {"id": doc["id"], "title": "B"}),
        ("DocBulkUpdateNode", {"filter": {"slug": "a"}, "update": {"title": "C"}}),
        ("DocBulkUpdateNode", {"data": [{"id": doc["id"], "title": "D"}]}),
        ("DocUpsertNode", {"slug": "a", "title": "E"}),
        ("DocBulkUpsertNode", {"data": [{"slug": "a", "title": "F"}]}),
        (
            "DocBulkCreateNode",
            {"data": [{"slug": "a", "title": "G"}], "conflict_resolution": "upsert"},
        ),
    ]
    for expected, (node, params) in enumerate(writes, start=2):
        run_node(node, params)
        assert version_of(doc["id"]) == expected, node
    created = run_node("DocBulkCreateNode", {"data": [{"slug": "b", "title": "B"}]})
    assert created["inserted"] == 1
    assert run_node("DocListNode", {"filter": {"slug": "b"}})["records"][0]["version"] == 1


def test_an_update_naming_a_stale_version_is_refused_with_the_current_one(docs):
    doc = run_node("DocCreateNode", {"slug": "a", "title": "A"})
    first = run_node("DocUpdateNode", {"id": doc["id"], "title": "B", "version": 1})
    assert first["version"] == 2
    error = failure("DocUpdateNode", {"id": doc["id"], "title": "stale", "version": 1})
    assert isinstance(error, VersionConflictError)
    assert (error.current_version, error.record_id, error.model) == (2, doc["id"], "Doc")
    assert run_node("DocReadNode", {"id": doc["id"]})["title"] == "B"
    missing = failure("DocUpdateNode", {"id": 999, "title": "x", "version": 1})
    assert isinstance(missing, NotFoundError)


def test_bulk_rows_naming_versions_change_only_where_the_version_matches(docs):
    ids = run_node(
        "DocBulkCreateNode",
        {"data": [{"slug": s, "title": s} for s in "abc"], "return_ids": True},
    )["ids"]
    run_node("DocUpdateNode", {"id": ids[1], "title": "moved on"})  # b is at version 2
    rows = [{"id": i, "title": "new", "version": 1} for i in ids]
    error = failure("DocBulkUpdateNode", {"data": rows})
    assert isinstance(error, VersionConflictError)
    assert (error.row, error.current_version) == (1, 2)
    assert [version_of(i) for i in ids] == [1, 2, 1]  # atomic: nothing changed
    out = run_node("DocBulkUpdateNode", {"data": rows, "atomic": False})
    assert out["updated"] == 2
    assert [(f["row"], f["field"]) for f in out["failed"]] == [(1, "version")]
    assert [version_of(i) for i in ids] == [2, 2, 2]


def test_a_model_may_require_every_update_to_name_its_version(url):
    db = DataFlow(url)

    @db.model
    class Page:
        slug: str
        title: str
        __dataflow__ = {"versioned": {"require_version": True}}

    page = run_node("PageCreateNode", {"slug": "a", "title": "A"})
    unversioned = failure("PageUpdateNode", {"id": page["id"], "title": "B"})
    assert "missing required parameter 'version'" in str(unversioned)
    assert (
        run_node("PageUpdateNode", {"id": page["id"], "title": "B", "version": 1})["version"] == 2
    )
    for node, params in [
        ("PageBulkUpdateNode", {"filter": {}, "update": {"title": "x"}}),
        ("PageUpsertNode", {"slug": "a", "title": "x", "conflict_on": ["id"], "id": page["id"]}),
        ("PageBulkUpsertNode", {"data": [{"id": page["id"], "slug": "a", "title": "x"}]}),
    ]:
        error = failure(node, params)
        assert isinstance(error, ValidationError) and "version" in str(error), node
    no_version = failure("PageBulkUpdateNode", {"data": [{"id": page["id"], "title": "x"}]})
    assert "version" in str(no_version)
    db.close()


def test_concurrent_updates_of_one_row_have_one_winner_per_version(docs):
    doc_id = run_node("DocCreateNode", {"slug": "a", "title": "start"})["id"]
    read = WorkflowBuilder()
    read.add_node("DocReadNode", "read", {"id": doc_id})
    reading = read.build()
    wins: list[int] = []
    conflicts: list[VersionConflictError] = []
    other: list[BaseException] = []
    lock = threading.Lock()
    # Each round every thread reads the row, then all of them update it at once.
    step = threading.Barrier(8)

    def worker(n: int) -> None:
        runtime = LocalRuntime()
        for attempt in range(4):
            step.wait()
            seen = runtime.execute(reading)[0]["read"]["version"]
            step.wait()
            update = WorkflowBuilder()
            params = {"id": doc_id, "title": f"{n}.{attempt}", "version": seen}
            update.add_node("DocUpdateNode", "update", params)
            try:
                runtime.execute(update.build())
            except NodeExecutionError as exc:
                with lock:
                    if isinstance(exc.cause, VersionConflictError):
                        conflicts.append(exc.cause)
                    else:
                        other.append(exc.cause)
            else:
                with lock:
                    wins.append(seen)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert other == []
    assert sorted(wins) == [1, 2, 3, 4]  # one winner per round, each at its version
    assert len(conflicts) == 28
    assert sorted({c.current_version for c in conflicts}) == [2, 3, 4, 5]
    assert version_of(doc_id) == len(wins) + 1
