"""Two-phase commit across two PostgreSQL databases, and recovery after the coordinator dies."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from dataflow import DataFlow, TransactionError
from dataflow.transactions.claims import claim
from kailash import LocalRuntime, NodeExecutionError, WorkflowBuilder
from tests.conftest import POSTGRES_URL, require
from tests.dataflow.crash_child import KILLED, after_crash

pytestmark = pytest.mark.postgresql_only

SERVER = sa.engine.make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")


def _prepared(name: str) -> list[str]:
    engine = sa.create_engine(SERVER.set(database=name))
    with engine.connect() as conn:
        gids = conn.execute(
            sa.text("SELECT gid FROM pg_prepared_xacts WHERE database = current_database()")
        ).scalars()
        found = list(gids)
    engine.dispose()
    return found


@pytest.fixture
def urls() -> Iterator[list[str]]:
    """Two new, empty PostgreSQL databases, dropped afterwards."""
    require("postgresql")
    admin = sa.create_engine(SERVER, isolation_level="AUTOCOMMIT")
    names = [f"dft2pc_{uuid.uuid4().hex[:12]}_{side}" for side in "ab"]
    with admin.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield [SERVER.set(database=n).render_as_string(hide_password=False) for n in names]
    finally:
        for name in names:
            leftover = sa.create_engine(SERVER.set(database=name), isolation_level="AUTOCOMMIT")
            with leftover.connect() as conn:
                for gid in _prepared(name):
                    conn.execute(
                        sa.text("ROLLBACK PREPARED :gid").bindparams(
                            sa.bindparam("gid", gid, literal_execute=True)
                        )
                    )
            leftover.dispose()
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def ledgers(urls) -> Iterator[list[DataFlow]]:
    """A DataFlow with a Ledger model on each database; nodes LedgerCreate0 and LedgerCreate1."""
    dbs = []
    for i, url in enumerate(urls):
        db = DataFlow(url)

        @db.model
        class Ledger:
            memo: str

        db.create_tables()
        db.register_node(db.nodes["LedgerCreateNode"], f"LedgerCreate{i}")
        dbs.append(db)
    yield dbs
    for db in dbs:
        db.close()


def memos(db: DataFlow) -> list[str]:
    with db.database.engine.connect() as conn:
        return sorted(conn.execute(sa.text("SELECT memo FROM ledgers")).scalars())


def log_status(db: DataFlow) -> list[str]:
    with db.database.engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT status FROM dataflow_two_phase_log")).scalars())


def commit_both(coordinator: DataFlow, memo_a: str = "a", memo_b: str = "b") -> dict:
    builder = WorkflowBuilder()
    builder.add_node(
        coordinator.nodes["TransactionManagerNode"],
        "commit",
        {
            "transaction_type": "two_phase_commit",
            "steps": [
                {"node": "LedgerCreate0", "params": {"memo": memo_a}},
                {"node": "LedgerCreate1", "params": {"memo": memo_b}},
            ],
        },
    )
    results, _ = LocalRuntime().execute(builder.build())
    return results["commit"]


def test_two_phase_commit_commits_both_databases(ledgers, urls):
    a, b = ledgers
    out = commit_both(a)
    assert out["status"] == "committed"
    assert out["results"]["LedgerCreate0"]["memo"] == "a"
    assert memos(a) == ["a"] and memos(b) == ["b"]
    assert log_status(a) == ["committed"]
    assert _prepared(sa.engine.make_url(urls[0]).database) == []


def test_a_failed_prepare_rolls_back_both_databases(ledgers, urls):
    a, b = ledgers
    with b.database.engine.begin() as conn:
        # Checked at PREPARE, not at the INSERT: the second database refuses in phase one.
        conn.execute(
            sa.text(
                "ALTER TABLE ledgers ADD CONSTRAINT ledgers_memo_key UNIQUE (memo) "
                "DEFERRABLE INITIALLY DEFERRED"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO ledgers (memo, created_at, updated_at) VALUES ('taken', now(), now())"
            )
        )
    with pytest.raises(NodeExecutionError) as info:
        commit_both(a, "a", "taken")
    assert isinstance(info.value.cause, TransactionError)
    assert "could not prepare" in str(info.value.cause)
    assert memos(a) == [] and memos(b) == ["taken"]
    assert log_status(a) == ["aborted"]
    assert [_prepared(sa.engine.make_url(u).database) for u in urls] == [[], []]


def test_a_coordinator_killed_after_the_decision_is_recovered_by_committing_both(
    ledgers, urls, crashes
):
    a, b = ledgers
    # Records: prepared (1), decision logged (2), committed (3).
    assert crashes.run("two_phase", 2, urls[0], *urls) == KILLED
    names = [sa.engine.make_url(u).database for u in urls]
    assert all(len(_prepared(n)) == 1 for n in names)
    assert memos(a) == [] and memos(b) == []
    report = after_crash(lambda: a.recover_two_phase_commits(b))
    assert len(report.committed) == 1 and not report.rolled_back
    assert memos(a) == ["entry 0"] and memos(b) == ["entry 1"]
    assert [_prepared(n) for n in names] == [[], []]
    assert log_status(a) == ["committed"]


def test_a_coordinator_killed_before_the_decision_is_recovered_by_rolling_back_both(
    ledgers, urls, crashes
):
    a, b = ledgers
    assert crashes.run("two_phase", 1, urls[0], *urls) == KILLED
    (txid,) = after_crash(a.recover_two_phase_commits).unresolved  # without b it cannot finish
    # While a live process holds the transaction, recovery leaves it alone.
    with claim(a.database, f"2pc:{txid}"):
        assert a.recover_two_phase_commits(b).in_progress == [txid]
    report = a.recover_two_phase_commits(b)
    assert report.rolled_back == [txid] and not report.committed
    assert memos(a) == [] and memos(b) == []
    assert [_prepared(sa.engine.make_url(u).database) for u in urls] == [[], []]
    assert log_status(a) == ["aborted"]
