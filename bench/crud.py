"""Single-record work through the workflow API beside raw sqlite3 and SQLAlchemy Core.

Run: ``.venv/bin/python bench/crud.py`` (SQLite in a temporary directory; add
``--postgresql URL`` to time PostgreSQL too). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sqlite3
import sys
import tempfile

import sqlalchemy as sa
from _util import core_engine, rate, table

from dataflow import DataFlow
from kailash import LocalRuntime, Node, WorkflowBuilder

N = 5000


class Noop(Node):
    def run(self, **_: object) -> dict:
        return {}


def bench_workflow_overhead() -> float:
    runtime = LocalRuntime()
    builder = WorkflowBuilder()
    builder.add_node(Noop, "noop")
    workflow = builder.build()
    return rate(lambda i: runtime.execute(workflow), 20000)


def bench_dataflow(url: str) -> dict[str, float]:
    db = DataFlow(url)

    @db.model
    class BenchUser:
        name: str
        email: str
        active: bool = True

    db.create_tables()
    runtime = LocalRuntime()

    def one(node: str, params: dict):
        builder = WorkflowBuilder()
        builder.add_node(node, "n", params)
        return builder.build()

    create = one("BenchUserCreateNode", {"name": "Alice", "email": "alice@example.com"})
    read = one("BenchUserReadNode", {"id": 1})
    update = one("BenchUserUpdateNode", {"id": 1, "name": "Bob"})
    out = {
        "create": rate(lambda i: runtime.execute(create), N),
        "read by id": rate(lambda i: runtime.execute(read), N),
        "update": rate(lambda i: runtime.execute(update), N),
    }
    db.close()
    return out


def bench_core(url: str) -> dict[str, float]:
    engine = core_engine(url)

    metadata = sa.MetaData()
    users = sa.Table(
        "core_users",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime),
        sa.Column("updated_at", sa.DateTime),
    )
    metadata.drop_all(engine)
    metadata.create_all(engine)
    insert = users.insert().returning(*users.c)
    select = sa.select(users).where(users.c.id == sa.bindparam("pk"))
    update = sa.update(users).where(users.c.id == sa.bindparam("pk")).returning(*users.c)

    def create(i: int) -> None:
        now = dt.datetime.now(dt.UTC)
        with engine.begin() as conn:
            dict(
                conn.execute(
                    insert,
                    {
                        "name": "Alice",
                        "email": "a@x",
                        "active": True,
                        "created_at": now,
                        "updated_at": now,
                    },
                )
                .mappings()
                .one()
            )

    def read(i: int) -> None:
        with engine.begin() as conn:
            dict(conn.execute(select, {"pk": 1}).mappings().one())

    def change(i: int) -> None:
        with engine.begin() as conn:
            dict(
                conn.execute(
                    update, {"pk": 1, "name": "Bob", "updated_at": dt.datetime.now(dt.UTC)}
                )
                .mappings()
                .one()
            )

    out = {"create": rate(create, N), "read by id": rate(read, N), "update": rate(change, N)}
    metadata.drop_all(engine)
    engine.dispose()
    return out


def bench_raw_sqlite(path: str) -> dict[str, float]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("DROP TABLE IF EXISTS raw_users")
    conn.execute(
        "CREATE TABLE raw_users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL,"
        " active BOOLEAN NOT NULL, created_at DATETIME, updated_at DATETIME)"
    )

    def create(i: int) -> None:
        now = dt.datetime.now(dt.UTC).isoformat()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO raw_users (name, email, active, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?) RETURNING *",
            ("Alice", "a@x", 1, now, now),
        ).fetchone()
        conn.execute("COMMIT")

    def read(i: int) -> None:
        conn.execute("SELECT * FROM raw_users WHERE id = ?", (1,)).fetchone()

    def change(i: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "UPDATE raw_users SET name = ?, updated_at = ? WHERE id = ? RETURNING *",
            ("Bob", dt.datetime.now(dt.UTC).isoformat(), 1),
        ).fetchone()
        conn.execute("COMMIT")

    out = {"create": rate(create, N), "read by id": rate(read, N), "update": rate(change, N)}
    conn.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgresql", help="also time this PostgreSQL URL")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="dataflow-bench-")
    sqlite_url = f"sqlite:///{os.path.join(tmp, 'bench.db')}"
    overhead = bench_workflow_overhead()
    print(f"one-node workflow, no database work: {1e6 / overhead:.1f} µs per run", file=sys.stderr)

    sections = [("SQLite (file, WAL)", sqlite_url, True)]
    if args.postgresql:
        sections.append(("PostgreSQL", args.postgresql, False))
    for title, url, raw in sections:
        results = {
            "DataFlow workflow": bench_dataflow(url),
            "SQLAlchemy Core": bench_core(url.replace("postgresql://", "postgresql+psycopg://")),
        }
        if raw:
            results["raw sqlite3"] = bench_raw_sqlite(os.path.join(tmp, "raw.db"))
        ops = ["create", "read by id", "update"]
        rows = [[peer, *(f"{r[op]:,.0f}" for op in ops)] for peer, r in results.items()]
        core = results["SQLAlchemy Core"]
        flow = results["DataFlow workflow"]
        rows.append(["DataFlow / Core", *(f"{flow[op] / core[op]:.2f}" for op in ops)])
        print(table(f"{title}: operations per second", ["peer", *ops], rows))
        print()
    print(f"One-node workflow overhead: {1e6 / overhead:.1f} µs per run.")


if __name__ == "__main__":
    main()
