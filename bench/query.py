"""Queries through the workflow API beside SQLAlchemy Core and the raw driver, on 10,000 rows.

Run: ``.venv/bin/python bench/query.py`` (SQLite in a temporary directory; add
``--postgresql URL`` or ``--mysql URL`` to time a server too). Prints a Markdown table of
queries per second: a filtered list (limit 100) and a grouped aggregate. Every peer runs the
same SQL on the same table and returns rows as dicts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from _util import rate, table

from dataflow import DataFlow
from kailash import LocalRuntime, WorkflowBuilder

ROWS = 10_000
N = {"filtered list": 2000, "aggregate": 200}
STATUSES = ["pending", "processing", "shipped", "cancelled"]
FILTER = {"status": {"$in": ["pending", "processing"]}, "total": {"$gte": 100.0}}
AGGREGATE = {
    "group_by": ["status"],
    "aggregate": {"revenue": {"$sum": "total"}, "orders": {"$count": "*"}},
}
LIST_SQL = (
    "SELECT id, customer, status, total, created_at, updated_at FROM bench_orders "
    "WHERE status IN ({0}, {0}) AND total >= {0} ORDER BY id LIMIT 100"
)
AGGREGATE_SQL = (
    "SELECT status, sum(total) AS revenue, count(*) AS orders FROM bench_orders "
    "GROUP BY status ORDER BY status"
)
ARGS = ("pending", "processing", 100.0)


def rows() -> list[dict[str, Any]]:
    pick = random.Random(7)
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    return [
        {
            "customer": f"customer{pick.randrange(500)}@example.com",
            "status": pick.choice(STATUSES),
            "total": round(pick.uniform(0, 1000), 2),
            "created_at": now + dt.timedelta(seconds=i),
            "updated_at": now + dt.timedelta(seconds=i),
        }
        for i in range(ROWS)
    ]


def bench_dataflow(url: str) -> dict[str, float]:
    db = DataFlow(url)

    @db.model
    class BenchOrder:
        customer: str
        status: str
        total: float

    db.create_tables()
    with db.database.begin() as conn:
        conn.execute(db.statements("BenchOrder").table.insert(), rows())
    runtime = LocalRuntime()

    def workflow(node: str, params: dict) -> Any:
        builder = WorkflowBuilder()
        builder.add_node(node, "q", params)
        return builder.build()

    listing = workflow("BenchOrderListNode", {"filter": FILTER, "limit": 100})
    grouped = workflow("BenchOrderAggregateNode", AGGREGATE)
    first = runtime.execute(listing)[0]["q"]
    assert first["count"] == 100 and set(first["records"][0]) == {
        "id",
        "customer",
        "status",
        "total",
        "created_at",
        "updated_at",
    }
    assert len(runtime.execute(grouped)[0]["q"]["records"]) == len(STATUSES)
    out = {
        "filtered list": rate(lambda i: runtime.execute(listing), N["filtered list"]),
        "aggregate": rate(lambda i: runtime.execute(grouped), N["aggregate"]),
    }
    db.close()
    return out


def bench_core(url: str) -> dict[str, float]:
    engine = sa.create_engine(url)
    orders = sa.Table("bench_orders", sa.MetaData(), autoload_with=engine)
    listing = (
        sa.select(
            orders.c.id,
            orders.c.customer,
            orders.c.status,
            orders.c.total,
            orders.c.created_at,
            orders.c.updated_at,
        )
        .where(orders.c.status.in_(["pending", "processing"]), orders.c.total >= 100.0)
        .order_by(orders.c.id)
        .limit(100)
    )
    grouped = (
        sa.select(
            orders.c.status,
            sa.func.sum(orders.c.total).label("revenue"),
            sa.func.count().label("orders"),
        )
        .group_by(orders.c.status)
        .order_by(orders.c.status)
    )

    def run(stmt: Any) -> Callable[[int], None]:
        def once(i: int) -> None:
            with engine.begin() as conn:
                [dict(r) for r in conn.execute(stmt).mappings()]

        return once

    out = {
        "filtered list": rate(run(listing), N["filtered list"]),
        "aggregate": rate(run(grouped), N["aggregate"]),
    }
    engine.dispose()
    return out


def bench_raw(connect: Callable[[], Any], marker: str) -> dict[str, float]:
    conn = connect()
    cursor = conn.cursor()

    def run(sql: str, args: tuple) -> Callable[[int], None]:
        def once(i: int) -> None:
            cursor.execute(sql, args)
            names = [d[0] for d in cursor.description]
            [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
            conn.commit()

        return once

    out = {
        "filtered list": rate(run(LIST_SQL.format(marker), ARGS), N["filtered list"]),
        "aggregate": rate(run(AGGREGATE_SQL, ()), N["aggregate"]),
    }
    conn.close()
    return out


def raw_peer(url: str, sqlite_path: str | None) -> tuple[str, Callable[[], Any], str]:
    if sqlite_path is not None:
        return "raw sqlite3", lambda: sqlite3.connect(sqlite_path), "?"
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "postgresql":
        import psycopg

        dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        # Server-side prepares off: PostgreSQL's generic plan for this query is the slower one.
        return "raw psycopg", lambda: psycopg.connect(dsn, prepare_threshold=None), "%s"
    import pymysql

    return (
        "raw PyMySQL",
        lambda: pymysql.connect(
            host=parsed.host,
            port=parsed.port or 3306,
            user=parsed.username,
            password=parsed.password or "",
            database=parsed.database,
        ),
        "%s",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgresql", help="also time this PostgreSQL URL (an empty database)")
    parser.add_argument("--mysql", help="also time this MariaDB/MySQL URL (an empty database)")
    args = parser.parse_args()
    path = os.path.join(tempfile.mkdtemp(prefix="dataflow-bench-"), "bench.db")
    sections = [("SQLite (file, WAL)", f"sqlite:///{path}", path)]
    if args.postgresql:
        url = args.postgresql.replace("postgresql://", "postgresql+psycopg://", 1)
        sections.append(("PostgreSQL", url, None))
    if args.mysql:
        url = args.mysql.replace("mysql://", "mysql+pymysql://", 1)
        sections.append(("MariaDB", url, None))
    ops = list(N)
    for title, url, sqlite_path in sections:
        print(f"{title}: timing...", file=sys.stderr)
        results = {"DataFlow workflow": bench_dataflow(url), "SQLAlchemy Core": bench_core(url)}
        name, connect, marker = raw_peer(url, sqlite_path)
        results[name] = bench_raw(connect, marker)
        body = [[peer, *(f"{r[op]:,.0f}" for op in ops)] for peer, r in results.items()]
        flow, core = results["DataFlow workflow"], results["SQLAlchemy Core"]
        body.append(["DataFlow / Core", *(f"{flow[op] / core[op]:.2f}" for op in ops)])
        print(table(f"{title}: queries per second on {ROWS:,} rows", ["peer", *ops], body))
        print()
        with sa.create_engine(url).begin() as conn:
            conn.execute(sa.text("DROP TABLE bench_orders"))


if __name__ == "__main__":
    main()
