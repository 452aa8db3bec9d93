"""Bulk writes racing each other and losing their connection, on every backend.

Overlapping upserts from many threads neither fail nor duplicate a row: each batch locks its
rows in key order, and a deadlock or serialization failure that still happens is retried when
the call owns its transaction. Inside a caller's transaction it cannot be, and a connection
killed mid-call cannot be either: both surface as DataFlow errors.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from dataflow import DatabaseError, DataFlow, DeadlockError
from tests.dataflow.conftest import count_rows, failure, run_node

pytestmark = pytest.mark.app_role

THREADS = 8
CALLS = 25
KEYS = 40  # each call upserts 15 of them, in its own random order


def define(db: DataFlow) -> DataFlow:
    @db.model
    class Account:
        email: str
        owner: str
        __dataflow__ = {"multi_tenant": True}
        __indexes__ = [{"name": "ux_accounts_email", "fields": ["email"], "unique": True}]

    db.create_tables()
    return db


def test_overlapping_bulk_upserts_from_many_threads_neither_fail_nor_duplicate(db):
    define(db)
    start = threading.Barrier(THREADS)
    outcomes: list[tuple[str, list[str], dict]] = []
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        chooser = random.Random(n)
        start.wait()
        for call in range(CALLS):
            owner = f"{n}/{call}"
            keys = chooser.sample(range(KEYS), 15)
            data = [{"email": f"k{k}@x", "owner": owner} for k in keys]
            try:
                out = run_node(
                    "AccountBulkUpsertNode",
                    {"data": data, "conflict_on": ["email"], "tenant_id": "t1"},
                )
            except BaseException as exc:  # every failure is counted, none stops the others
                errors.append(exc)
            else:
                outcomes.append((owner, [row["email"] for row in data], out))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(outcomes) == THREADS * CALLS
    for _, emails, out in outcomes:
        assert out["inserted"] + out["updated"] == out["processed"] == len(emails)
    rows = run_node("AccountListNode", {"limit": 1000, "tenant_id": "t1"})["records"]
    emails = Counter(row["email"] for row in rows)
    assert len(emails) == len(rows) == count_rows(db, "accounts")  # no duplicates
    # True counts: each key was inserted exactly once, by whichever call came first.
    assert sum(out["inserted"] for _, _, out in outcomes) == len(rows)
    # Every row holds the value of a call that wrote its key.
    written = {owner: set(emails) for owner, emails, _ in outcomes}
    assert all(row["email"] in written[row["owner"]] for row in rows)


def test_a_deadlock_inside_a_callers_transaction_is_reported_not_retried(url, backend):
    if backend == "sqlite":
        pytest.skip("SQLite has one writer at a time: its transactions never deadlock")
    db = define(DataFlow(url))
    first = [{"email": f"k{k}@x", "owner": "seed"} for k in range(2)]
    run_node("AccountBulkUpsertNode", {"data": first, "conflict_on": ["email"], "tenant_id": "t1"})
    holding = threading.Barrier(2)
    caught: list[BaseException] = []

    def worker(mine: int, theirs: int) -> None:
        def upsert(key: int) -> None:
            data = [{"email": f"k{key}@x", "owner": f"w{mine}"}]
            run_node(
                "AccountBulkUpsertNode",
                {"data": data, "conflict_on": ["email"], "tenant_id": "t1"},
            )

        try:
            with db.transaction():
                upsert(mine)
                holding.wait()  # each holds its own row, then reaches for the other's
                upsert(theirs)
        except BaseException as exc:
            caught.append(exc)

    threads = [threading.Thread(target=worker, args=pair) for pair in ((0, 1), (1, 0))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(caught) == 1, caught  # the database broke the deadlock by rolling back one
    error = caught[0].cause if hasattr(caught[0], "cause") else caught[0]
    assert isinstance(error, DeadlockError)
    assert "enclosing transaction" in str(error) and "retry" in str(error)
    db.close()


@pytest.fixture
def killer(url: str, admin_url: str, backend: str) -> Iterator[tuple[str, Callable[[], int]]]:
    """A URL whose connections an administrator can kill, and the function that kills them."""
    if backend == "sqlite":
        pytest.skip("an embedded database has no connection to kill")
    name = f"dft_kill_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    parsed = sa.engine.make_url(url)
    if backend == "postgresql":
        target = parsed.update_query_dict({"application_name": name})
        find = sa.text("SELECT pid FROM pg_stat_activity WHERE application_name = :name")
        params = {"name": name}
        kill = "SELECT pg_terminate_backend({})"
    else:
        target = parsed
        find = sa.text(
            "SELECT id FROM information_schema.processlist WHERE db = :db AND id <> CONNECTION_ID()"
        )
        params = {"db": parsed.database}
        kill = "KILL {}"

    def kill_all() -> int:
        with admin.connect() as conn:
            ids = list(conn.execute(find, params).scalars())
            for found in ids:
                conn.execute(sa.text(kill.format(int(found))))
        return len(ids)

    yield target.render_as_string(hide_password=False), kill_all
    admin.dispose()


def define_items(db: DataFlow) -> DataFlow:
    @db.model
    class Item:
        sku: str
        __indexes__ = [{"name": "ux_items_sku", "fields": ["sku"], "unique": True}]

    db.create_tables()
    return db


@pytest.mark.parametrize(
    ("node", "params"),
    [("ItemBulkCreateNode", {}), ("ItemBulkUpsertNode", {"conflict_on": ["sku"]})],
)
def test_a_connection_killed_mid_bulk_surfaces_as_a_dataflow_error(killer, node, params):
    target, kill_all = killer
    db = define_items(DataFlow(target))
    killed: list[int] = []

    def rows() -> Iterator[dict]:
        for i in range(300):
            if i == 150:  # the first batch is written, the transaction is open: cut it off
                killed.append(kill_all())
            yield {"sku": f"s{i}"}

    error = failure(node, {"data": rows(), "batch_size": 100, **params})
    assert killed and killed[0] >= 1
    assert isinstance(error, DatabaseError), repr(error)
    assert "s1" not in str(error)
    db.close()
    fresh = define_items(DataFlow(target))
    assert count_rows(fresh, "items") == 0  # the transaction died with its connection
    fresh.close()
