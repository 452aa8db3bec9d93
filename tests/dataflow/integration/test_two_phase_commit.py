"""Two-phase commit across two databases (PostgreSQL, MariaDB XA, or one of each), and recovery
after the coordinator dies."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from dataflow import DataFlow, TransactionError
from dataflow.database.transaction import Transaction
from dataflow.models.types import utcnow
from dataflow.transactions import log as tx_log
from dataflow.transactions.claims import claim
from dataflow.transactions.twophase import participant_key, prepared_xids
from kailash import LocalRuntime, NodeExecutionError, WorkflowBuilder
from tests.conftest import SERVERS, require
from tests.dataflow.crash_child import KILLED, after_crash

#: Coordinator (first) and second participant. The second is PostgreSQL where a test needs a
#: participant that refuses at PREPARE (a deferred constraint; MariaDB has none).
PAIRS = {
    "pg+pg": ("postgresql", "postgresql"),
    "mariadb+pg": ("mysql", "postgresql"),
    "mariadb+mariadb": ("mysql", "mysql"),
}


def _server(backend: str) -> sa.URL:
    driver = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}[backend]
    return sa.engine.make_url(SERVERS[backend]).set(drivername=driver)


def _xids(url: str) -> list[str]:
    """The transaction ids prepared and unfinished where ``url`` points."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        found = prepared_xids(conn)
    engine.dispose()
    return found


@pytest.fixture(params=list(PAIRS))
def urls(request) -> Iterator[list[str]]:
    """Two new, empty databases, dropped afterwards with anything left prepared in them."""
    backends = PAIRS[request.param]
    for backend in set(backends):
        require(backend)
    made = []
    for side, backend in zip("ab", backends, strict=True):
        name = f"dft2pc_{uuid.uuid4().hex[:12]}_{side}"
        admin = sa.create_engine(_server(backend), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            quoted = conn.dialect.identifier_preparer.quote(name)
            conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
        admin.dispose()
        made.append((backend, name))
    found = [_server(b).set(database=n).render_as_string(hide_password=False) for b, n in made]
    try:
        yield found
    finally:
        mine = logged_xids(found[0])  # MariaDB lists XA transactions server-wide: ours only
        for (backend, name), url in zip(made, found, strict=True):
            leftover = sa.create_engine(url, isolation_level="AUTOCOMMIT")
            with leftover.connect() as conn:
                for xid in set(prepared_xids(conn)) & mine:
                    verb = "XA ROLLBACK" if backend == "mysql" else "ROLLBACK PREPARED"
                    conn.execute(
                        sa.text(f"{verb} :xid").bindparams(
                            sa.bindparam("xid", xid, literal_execute=True)
                        )
                    )
            leftover.dispose()
            admin = sa.create_engine(_server(backend), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                quoted = conn.dialect.identifier_preparer.quote(name)
                force = " WITH (FORCE)" if backend == "postgresql" else ""
                conn.execute(sa.text(f"DROP DATABASE {quoted}{force}"))
            admin.dispose()


def logged_xids(coordinator_url: str, participant_url: str | None = None) -> set[str]:
    """The participant transaction ids the coordinator's log names (those of one participant)."""
    database = sa.engine.make_url(participant_url).database if participant_url else None
    engine = sa.create_engine(coordinator_url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("dataflow_two_phase_log"):
                return set()
            rows = conn.execute(sa.text("SELECT participants FROM dataflow_two_phase_log"))
            entries = [e for (text,) in rows for e in tx_log.loads(text)]
            return {
                e["xid"]
                for e in entries
                if database is None or e["database"].endswith(f"/{database}")
            }
    finally:
        engine.dispose()


def eventually(check: Callable[[], bool], seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def prepared(urls: list[str], url: str) -> list[str]:
    """This test's transactions left prepared where ``url`` points."""
    mine = logged_xids(urls[0], url)
    return [x for x in _xids(url) if x in mine]


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
    assert prepared(urls, urls[0]) == []


def test_a_failed_prepare_rolls_back_both_databases(ledgers, urls):
    a, b = ledgers
    if b.dialect != "postgresql":
        pytest.skip("MariaDB checks every constraint before XA PREPARE: nothing fails there")
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
    assert [prepared(urls, u) for u in urls] == [[], []]


def test_a_coordinator_killed_after_the_decision_is_recovered_by_committing_both(
    ledgers, urls, crashes
):
    a, b = ledgers
    # Records: prepared (1), decision logged (2), committed (3).
    assert crashes.run("two_phase", 2, urls[0], *urls) == KILLED
    # MariaDB shows a prepared XA transaction once the server has seen its session die.
    assert eventually(lambda: all(len(prepared(urls, u)) == 1 for u in urls))
    assert memos(a) == [] and memos(b) == []
    report = after_crash(lambda: a.recover_two_phase_commits(b))
    assert len(report.committed) == 1 and not report.rolled_back
    assert memos(a) == ["entry 0"] and memos(b) == ["entry 1"]
    assert [prepared(urls, u) for u in urls] == [[], []]
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
    assert [prepared(urls, u) for u in urls] == [[], []]
    assert log_status(a) == ["aborted"]


def test_recovery_leaves_a_mariadb_transaction_while_its_session_lives(ledgers, urls):
    a, b = ledgers
    if b.dialect != "mysql":
        pytest.skip("a prepared PostgreSQL transaction belongs to no session")
    # A coordinator that prepared b's transaction and logged "commit", then hung: its session
    # still holds the XA transaction, which no other session can finish yet.
    txid = uuid.uuid4().hex
    xid = f"dataflow-{txid}-0"
    hung = Transaction(b.database, xid=xid, savepoints=False, label="hung coordinator")
    hung.conn.execute(
        sa.text("INSERT INTO ledgers (memo, created_at, updated_at) VALUES ('hung', NOW(), NOW())")
    )
    hung.prepare()
    tx_log.ensure_tables(a.database)
    entries = [{"database": participant_key(b.database), "xid": xid}]
    with a.database.engine.begin() as conn:
        conn.execute(
            tx_log.two_phase.insert(),
            {
                "id": txid,
                "status": "commit",
                "participants": tx_log.dumps(entries),
                "created_at": utcnow(),
                "updated_at": utcnow(),
            },
        )
    assert a.recover_two_phase_commits(b).in_progress == [txid]
    assert memos(b) == [] and log_status(a) == ["commit"]
    hung.conn.invalidate()  # the process dies; the server detaches its XA transaction
    report = after_crash(lambda: a.recover_two_phase_commits(b))
    assert report.committed == [txid]
    assert memos(b) == ["hung"] and log_status(a) == ["committed"]
