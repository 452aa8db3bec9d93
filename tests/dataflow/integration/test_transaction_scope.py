"""TransactionScopeNode and db.transaction(): one transaction per database, on every backend."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import time

import pytest
import sqlalchemy as sa

from dataflow import (
    ConfigurationError,
    IntegrityError,
    TransactionError,
    TransactionTimeoutError,
    ValidationError,
)
from dataflow.nodes import DataFlowNode
from dataflow.nodes.base import passthrough
from kailash import AsyncLocalRuntime, LocalRuntime, Node, NodeExecutionError, WorkflowBuilder
from tests.dataflow.conftest import count_rows, run_node


class Boom(Node):
    def run(self, **_: object) -> dict:
        raise RuntimeError("boom")


class Pause(Node):
    async def arun(self, **_: object) -> dict:
        await asyncio.sleep(0)
        return {}

    def run(self, **_: object) -> dict:
        return {}


class Sleep(Node):
    def run(self, **_: object) -> dict:
        time.sleep(0.6)
        return {}


def define_books(db):
    @db.model
    class Author:
        name: str

    @db.model
    class Book:
        title: str
        __indexes__ = [{"name": "ix_books_title", "fields": ["title"], "unique": True}]

    return db


@pytest.fixture
def books(db):
    return define_books(db)


def chain(builder: WorkflowBuilder, *nodes: tuple) -> WorkflowBuilder:
    """Add the nodes in order, each connected to the one before."""
    previous = None
    for node_type, node_id, params in nodes:
        builder.add_node(node_type, node_id, params)
        if previous is not None:
            builder.add_connection(previous, "result", node_id, "input")
        previous = node_id
    return builder


def scoped(*nodes: tuple, **scope: object):
    return chain(
        WorkflowBuilder(),
        ("TransactionScopeNode", "tx", {"isolation_level": "READ_COMMITTED", **scope}),
        ("AuthorCreateNode", "author", {"name": "Ann"}),
        ("BookCreateNode", "book", {"title": "Dune"}),
        *nodes,
    ).build()


def counts(db) -> tuple[int, int]:
    return count_rows(db, "authors"), count_rows(db, "books")


def test_a_failing_scoped_workflow_leaves_both_tables_unchanged(books):
    with pytest.raises(NodeExecutionError) as info:
        LocalRuntime().execute(scoped((Boom, "boom", {})))
    assert info.value.node_id == "boom"
    assert counts(books) == (0, 0)


def test_the_same_workflow_without_the_failure_commits_both(books):
    results, _ = LocalRuntime().execute(scoped())
    assert results["tx"]["isolation_level"] == "READ COMMITTED"
    assert counts(books) == (1, 1)
    assert run_node("BookReadNode", {"id": results["book"]["id"]})["title"] == "Dune"


def test_the_scope_spans_the_async_runtimes_threads(books):
    # An async node makes the runtime run each plain node in a thread of its own.
    failing = scoped((Pause, "pause", {}), (Boom, "boom", {}))
    with pytest.raises(NodeExecutionError):
        asyncio.run(AsyncLocalRuntime().execute(failing))
    assert counts(books) == (0, 0)
    asyncio.run(AsyncLocalRuntime().execute(scoped((Pause, "pause", {}))))
    assert counts(books) == (1, 1)


def test_nodes_see_what_earlier_nodes_of_the_scope_wrote(books):
    workflow = scoped(("AuthorCountNode", "seen", {}), (Boom, "boom", {}))
    with pytest.raises(NodeExecutionError) as info:
        LocalRuntime().execute(workflow)
    assert info.value.results["seen"] == {"count": 1}
    assert counts(books) == (0, 0)


def test_without_rollback_on_error_what_succeeded_commits_and_the_failed_node_leaves_nothing(
    books,
):
    # One statement per row: the third row fails after two were written inside the node.
    rows = [{"title": "A"}, {"title": "B"}, {"title": "Dune"}]
    workflow = scoped(
        ("BookBulkCreateNode", "bulk", {"data": rows, "batch_size": 1}), rollback_on_error=False
    )
    with pytest.raises(NodeExecutionError) as info:
        LocalRuntime().execute(workflow)
    assert info.value.node_id == "bulk"
    assert counts(books) == (1, 1)
    titles = [r["title"] for r in run_node("BookListNode")["records"]]
    assert titles == ["Dune"]


def test_a_failed_node_inside_a_transaction_block_leaves_the_transaction_usable(books):
    bulk = chain(
        WorkflowBuilder(),
        ("BookBulkCreateNode", "bulk", {"data": [{"title": "A"}, {"title": "A"}], "batch_size": 1}),
    ).build()
    with books.transaction():
        with pytest.raises(NodeExecutionError):
            LocalRuntime().execute(bulk)
        # On PostgreSQL this would fail ("current transaction is aborted") without savepoints.
        run_node("AuthorCreateNode", {"name": "Ann"})
    assert counts(books) == (1, 0)


def test_nested_transaction_blocks_are_savepoints(books):
    with books.transaction():
        run_node("AuthorCreateNode", {"name": "outer"})
        with pytest.raises(KeyError), books.transaction():
            run_node("AuthorCreateNode", {"name": "inner"})
            raise KeyError("undo the inner block only")
        with books.transaction():
            run_node("AuthorCreateNode", {"name": "kept"})
    names = sorted(r["name"] for r in run_node("AuthorListNode")["records"])
    assert names == ["kept", "outer"]
    with pytest.raises(KeyError), books.transaction():
        with books.transaction():
            run_node("AuthorCreateNode", {"name": "inner"})
        raise KeyError("the outer block takes its savepoints with it")
    assert count_rows(books, "authors") == 2


def test_a_scope_node_inside_a_transaction_block_nests_in_it(books):
    with pytest.raises(ZeroDivisionError), books.transaction():
        LocalRuntime().execute(scoped(isolation_level=None))
        assert counts(books) == (0, 0)  # not committed yet: the block decides
        raise ZeroDivisionError
    assert counts(books) == (0, 0)


def test_a_workflow_run_by_a_node_joins_the_scope(books):
    class CreateThroughAWorkflow(Node):
        def run(self, **_: object) -> dict:
            return run_node("AuthorCreateNode", {"name": "nested"})

    with pytest.raises(NodeExecutionError):
        LocalRuntime().execute(scoped((CreateThroughAWorkflow, "nested", {}), (Boom, "boom", {})))
    assert counts(books) == (0, 0)


def test_a_scope_that_outlives_its_timeout_rolls_back(books):
    books.create_tables()  # so that the deadline is spent on the sleep alone
    workflow = chain(
        WorkflowBuilder(),
        ("TransactionScopeNode", "tx", {"timeout": 0.3}),
        ("AuthorCreateNode", "author", {"name": "Ann"}),
        (Sleep, "slow", {}),
        ("BookCreateNode", "book", {"title": "Dune"}),
    ).build()
    with pytest.raises(NodeExecutionError) as info:
        LocalRuntime().execute(workflow)
    assert info.value.node_id == "book"
    assert isinstance(info.value.cause, TransactionTimeoutError)
    assert "timeout of 0.3 s" in str(info.value.cause)
    assert counts(books) == (0, 0)


SLOW_QUERY = {
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 2000000000) "
    "SELECT count(*) FROM c",
    "postgresql": "SELECT pg_sleep(60)",
    "mysql": "SELECT SLEEP(60)",
}


def test_a_statement_running_past_the_timeout_is_interrupted(books, backend):
    with pytest.raises(TransactionTimeoutError) as info, books.transaction(timeout=0.5):
        run_node("AuthorCreateNode", {"name": "Ann"})
        with books.connection("slow query") as conn:
            conn.execute(sa.text(SLOW_QUERY[backend]))
    # The statement ended with the database's "interrupted" error, not by finishing.
    assert isinstance(info.value.__cause__, sa.exc.DBAPIError)
    assert count_rows(books, "authors") == 0


LEVEL_QUERY = {
    "postgresql": "SHOW transaction_isolation",
    "mysql": "SELECT @@tx_isolation",
}


class IsolationProbe(DataFlowNode):
    """Reports the isolation level its statements run at."""

    checks = {"query": passthrough}

    def run(self, query: str) -> dict:
        with self.store.connection("probe") as conn:
            level = conn.execute(sa.text(query)).scalar_one()
        return {"level": level.replace("-", " ").upper()}


@pytest.mark.parametrize("level", ["READ_COMMITTED", "REPEATABLE_READ", "SERIALIZABLE"])
def test_isolation_levels_are_the_servers_own(books, backend, level):
    if backend == "sqlite":
        pytest.skip("SQLite is always serializable (see the next test)")
    probe = books.register_node(type("IsolationProbe", (IsolationProbe,), {}))
    workflow = chain(
        WorkflowBuilder(),
        ("TransactionScopeNode", "tx", {"isolation_level": level}),
        (probe, "probe", {"query": LEVEL_QUERY[backend]}),
    ).build()
    results, _ = LocalRuntime().execute(workflow)
    assert results["probe"]["level"] == level.replace("_", " ")
    with books.transaction(isolation_level=level) as tx:
        seen = tx.connection.execute(sa.text(LEVEL_QUERY[backend])).scalar_one()
    assert seen.replace("-", " ").upper() == level.replace("_", " ")


@pytest.mark.sqlite_only
def test_a_sqlite_transaction_keeps_other_writers_out_until_it_ends(books, url):
    path = sa.engine.make_url(url).database
    books.create_tables()
    other = sqlite3.connect(path, timeout=0.1, isolation_level=None)
    with books.transaction(isolation_level="READ_UNCOMMITTED"):
        run_node("AuthorCreateNode", {"name": "Ann"})
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("INSERT INTO authors (name, created_at, updated_at) VALUES ('x', 0, 0)")
    other.execute("INSERT INTO authors (name, created_at, updated_at) VALUES ('x', 0, 0)")
    other.close()
    assert count_rows(books, "authors") == 2


@pytest.mark.parametrize(
    ("level", "sees_new_rows"), [("READ_COMMITTED", True), ("REPEATABLE_READ", False)]
)
def test_repeatable_read_keeps_its_snapshot_and_read_committed_does_not(
    books, backend, level, sees_new_rows
):
    if backend == "sqlite":
        pytest.skip("a SQLite transaction keeps other writers out (see above)")
    books.create_tables()
    with books.transaction(isolation_level=level):
        assert run_node("AuthorCountNode")["count"] == 0
        with books.database.engine.begin() as other:
            other.execute(
                sa.text("INSERT INTO authors (name, created_at, updated_at) VALUES ('x', :t, :t)"),
                {"t": "2025-01-01 00:00:00"},
            )
        assert run_node("AuthorCountNode")["count"] == (1 if sees_new_rows else 0)


def test_an_in_memory_database_scope_spans_threads():
    from dataflow import DataFlow

    with define_books(DataFlow(":memory:")):
        with pytest.raises(NodeExecutionError):
            asyncio.run(AsyncLocalRuntime().execute(scoped((Pause, "p", {}), (Boom, "b", {}))))
        asyncio.run(AsyncLocalRuntime().execute(scoped((Pause, "p", {}))))
        assert run_node("AuthorCountNode")["count"] == 1
        assert run_node("BookCountNode")["count"] == 1


def test_bad_scope_parameters_are_refused_when_the_workflow_is_built(books):
    for params, fix in [
        ({"isolation_level": "DIRTY_READ"}, "READ_UNCOMMITTED, READ_COMMITTED"),
        ({"timeout": -1}, "a positive number of seconds"),
        ({"rollback_on_error": "yes"}, "a bool"),
    ]:
        builder = WorkflowBuilder()
        builder.add_node("TransactionScopeNode", "tx", params)
        with pytest.raises(ValidationError) as info:
            builder.build()
        assert str(info.value).startswith("TransactionScopeNode 'tx': parameter")
        assert fix in str(info.value)
    with pytest.raises(ConfigurationError, match="isolation_level expects one of"):
        books.transaction(isolation_level="sometimes").__enter__()


def test_a_second_scope_in_one_run_is_refused(books):
    workflow = chain(
        WorkflowBuilder(),
        ("TransactionScopeNode", "tx", {}),
        ("TransactionScopeNode", "again", {}),
    ).build()
    with pytest.raises(NodeExecutionError, match="already has a transaction scope"):
        LocalRuntime().execute(workflow)


@pytest.mark.sqlite_only
def test_a_table_cannot_be_created_inside_an_open_sqlite_transaction(books):
    books.create_tables()
    with pytest.raises(NodeExecutionError) as info, books.transaction():

        @books.model
        class Late:
            name: str

        run_node("LateCreateNode", {"name": "x"})
    assert isinstance(info.value.cause, TransactionError)
    assert "SQLite allows one writer" in str(info.value.cause)
    assert "before the transaction begins" in str(info.value.cause)


def test_a_run_that_ends_after_the_scopes_timeout_rolls_back(books):
    books.create_tables()
    workflow = scoped((Sleep, "slow", {}), timeout=0.3)
    with pytest.raises(TransactionTimeoutError, match="timeout of 0.3 s"):
        LocalRuntime().execute(workflow)
    assert counts(books) == (0, 0)


def test_work_a_node_swallowed_a_failure_in_cannot_commit_half_done(books):
    insert = sa.text(
        "INSERT INTO books (title, created_at, updated_at) VALUES ('X', :t, :t)"
    ).bindparams(t=dt.datetime(2025, 1, 1))

    class InsertTwiceQuietly(Node):
        def run(self, **_: object) -> dict:
            try:
                with books.connection("insert twice") as conn:
                    conn.execute(insert)
                    conn.execute(insert)  # the unique index refuses this one
            except IntegrityError:
                return {"swallowed": True}
            return {"swallowed": False}

    with pytest.raises(TransactionError, match="can only roll back"):
        LocalRuntime().execute(scoped((InsertTwiceQuietly, "quiet", {})))
    assert counts(books) == (0, 0)
