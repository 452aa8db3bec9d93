"""Bulk writes of 100,000 rows: DataFlow's bulk nodes beside the raw drivers and SQLAlchemy Core.

Run: ``.venv/bin/python bench/bulk.py`` (SQLite in a temporary directory; add
``--postgresql URL`` and ``--mysql URL`` to time those servers too). Every peer writes the same
rows into a table of the same shape (name, price, category and the two timestamps), inside one
transaction. Prints one Markdown table per backend, in rows per second (best of three).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import gc
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from _util import core_engine, table
from sqlalchemy.dialects import mysql, postgresql, sqlite

from dataflow import DataFlow
from kailash import LocalRuntime, WorkflowBuilder

N = 100_000
REPEAT = 3
#: Set-based statements take tens of milliseconds: more tries steady them on a shared machine.
SHORT_REPEAT = 9
OPS = ["create", "upsert", "update by filter", "update rows", "delete by filter"]
_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert, "mysql": mysql.insert}


@functools.cache
def rows(first_id: int | None = None) -> list[dict[str, Any]]:
    """N product rows; with ids from ``first_id`` when given (made once, never changed)."""
    out = [
        {"name": f"product {i}", "price": float(i % 1000) + 0.5, "category": _category(i)}
        for i in range(N)
    ]
    if first_id is not None:
        for i, row in enumerate(out):
            row["id"] = first_id + i
    return out


def _category(i: int) -> str:
    return "electronics" if i % 2 else "garden"


def best_short(prepare: Callable[[], Any], work: Callable[[Any], int]) -> float:
    return best(prepare, work, SHORT_REPEAT)


def empty(dialect: str, table_name: str) -> str:
    """Emptying a table the same way for every peer: TRUNCATE leaves no dead rows behind."""
    if dialect == "sqlite":
        return f"DELETE FROM {table_name}"
    restart = " RESTART IDENTITY" if dialect == "postgresql" else ""
    return f"TRUNCATE TABLE {table_name}{restart}"


def best(prepare: Callable[[], Any], work: Callable[[Any], int], repeat: int = REPEAT) -> float:
    """Rows per second of ``work(prepare())``, best of ``repeat``; ``work`` returns rows done."""
    fastest = float("inf")
    done = 0
    for _ in range(repeat):
        state = prepare()
        gc.collect()
        start = time.perf_counter()
        done = work(state)
        fastest = min(fastest, time.perf_counter() - start)
    return done / fastest


# -- DataFlow ----------------------------------------------------------------------------


def bench_dataflow(url: str, tenant: str | None = None) -> dict[str, float]:
    """DataFlow's bulk nodes; with ``tenant``, on a multi-tenant model, acting for it."""
    db = DataFlow(url)
    table_name = f"bench_products_{uuid.uuid4().hex[:8]}"

    @db.model
    class BenchProduct:
        name: str
        price: float
        category: str
        __tablename__ = table_name
        __dataflow__ = {"multi_tenant": tenant is not None}

    db.create_tables()
    runtime = LocalRuntime()
    engine = db.database.engine
    acting = {} if tenant is None else {"tenant_id": tenant}

    def node(node_type: str, params: dict[str, Any]) -> dict[str, Any]:
        builder = WorkflowBuilder()
        builder.add_node(node_type, "n", {**params, **acting})
        return runtime.execute(builder.build())[0]["n"]

    def reset(count: int = 0) -> None:
        with engine.begin() as conn:
            # TRUNCATE passes row-level security by: the owner empties every tenant's rows.
            conn.execute(sa.text(empty(engine.dialect.name, table_name)))
        if count:
            node("BenchProductBulkCreateNode", {"data": rows(1)[:count]})

    create_rows = rows()
    upsert_rows = rows(N // 2 + 1)  # half update existing rows, half are new rows
    update_rows = [{"id": i + 1, "price": 2.5} for i in range(N)]
    out = {
        "create": best(
            reset,
            lambda _: node("BenchProductBulkCreateNode", {"data": create_rows})["inserted"],
        ),
        "upsert": best(
            lambda: reset(N),
            lambda _: _sum(node("BenchProductBulkUpsertNode", {"data": upsert_rows})),
        ),
        "update by filter": best_short(
            lambda: reset(N),
            lambda _: node(
                "BenchProductBulkUpdateNode",
                {"filter": {"category": "electronics"}, "update": {"price": {"$multiply": 0.9}}},
            )["updated"],
        ),
        "update rows": best(
            lambda: reset(N),
            lambda _: node("BenchProductBulkUpdateNode", {"data": update_rows})["updated"],
        ),
        "delete by filter": best_short(
            lambda: reset(N),
            lambda _: node("BenchProductBulkDeleteNode", {"filter": {"category": "electronics"}})[
                "deleted"
            ],
        ),
    }
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {table_name}"))
    db.close()
    return out


def _sum(out: dict[str, int]) -> int:
    return out["inserted"] + out["updated"]


# -- SQLAlchemy Core ---------------------------------------------------------------------


def bench_core(url: str) -> dict[str, float]:
    engine = core_engine(url)

    metadata = sa.MetaData()
    products = sa.Table(
        f"core_products_{uuid.uuid4().hex[:8]}",
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("price", sa.Double, nullable=False),
        sa.Column("category", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    metadata.create_all(engine)
    c = products.c

    def stamped(source: list[dict[str, Any]]) -> list[dict[str, Any]]:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        return [{**row, "created_at": now, "updated_at": now} for row in source]

    def reset(count: int = 0) -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(empty(engine.dialect.name, products.name)))
        with engine.begin() as conn:
            if count:
                conn.execute(products.insert(), stamped(rows(1)[:count]))

    def create(_: object) -> int:
        with engine.begin() as conn:
            conn.execute(products.insert(), stamped(rows()))
        return N

    def upsert(_: object) -> int:
        insert = _INSERTS[engine.dialect.name](products)
        if engine.dialect.name == "mysql":
            stmt = insert.on_duplicate_key_update(
                name=insert.inserted.name, price=insert.inserted.price
            )
        else:
            changes = {"name": insert.excluded.name, "price": insert.excluded.price}
            stmt = insert.on_conflict_do_update(index_elements=[c.id], set_=changes)
        with engine.begin() as conn:
            conn.execute(stmt, stamped(rows(N // 2 + 1)))
        return N

    def update_filter(_: object) -> int:
        with engine.begin() as conn:
            stmt = products.update().where(c.category == "electronics")
            return conn.execute(stmt.values(price=c.price * 0.9)).rowcount

    def update_rows(_: object) -> int:
        stmt = products.update().where(c.id == sa.bindparam("pk")).values(price=sa.bindparam("p"))
        with engine.begin() as conn:
            conn.execute(stmt, [{"pk": i + 1, "p": 2.5} for i in range(N)])
        return N

    def delete(_: object) -> int:
        with engine.begin() as conn:
            return conn.execute(products.delete().where(c.category == "electronics")).rowcount

    out = {
        "create": best(reset, create),
        "upsert": best(lambda: reset(N), upsert),
        "update by filter": best_short(lambda: reset(N), update_filter),
        "update rows": best(lambda: reset(N), update_rows),
        "delete by filter": best_short(lambda: reset(N), delete),
    }
    metadata.drop_all(engine)
    engine.dispose()
    return out


# -- raw drivers -------------------------------------------------------------------------


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def bench_raw_sqlite(path: str) -> dict[str, float]:
    conn = sqlite3.connect(path, isolation_level=None)
    # The settings DataFlow gives every SQLite connection, so both do the same work.
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "foreign_keys=ON",
        "temp_store=MEMORY",
    ):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute(
        "CREATE TABLE raw_products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price FLOAT NOT "
        "NULL, category TEXT NOT NULL, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL)"
    )
    insert = (
        "INSERT INTO raw_products (name, price, category, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?)"
    )

    def tuples(source: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        now = _stamp()
        return [(*row.values(), now, now) for row in source]

    def run(sql: str, params: Any = (), many: bool = False) -> int:
        conn.execute("BEGIN IMMEDIATE")
        cursor = conn.executemany(sql, params) if many else conn.execute(sql, params)
        conn.execute("COMMIT")
        return cursor.rowcount

    def reset(count: int = 0) -> None:
        run("DELETE FROM raw_products")
        if count:
            run(insert, tuples(rows()[:count]), many=True)

    upsert = (
        "INSERT INTO raw_products (name, price, category, id, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
        "price = excluded.price, category = excluded.category, updated_at = excluded.updated_at"
    )
    out = {
        "create": best(reset, lambda _: run(insert, tuples(rows()), many=True)),
        "upsert": best(lambda: reset(N), lambda _: run(upsert, tuples(rows(N // 2 + 1)), True)),
        "update by filter": best_short(
            lambda: reset(N),
            lambda _: run(
                "UPDATE raw_products SET price = price * ?, updated_at = ? WHERE category = ?",
                (0.9, _stamp(), "electronics"),
            ),
        ),
        "update rows": best(
            lambda: reset(N),
            lambda _: run(
                "UPDATE raw_products SET price = ?, updated_at = ? WHERE id = ?",
                [(2.5, _stamp(), i + 1) for i in range(N)],
                many=True,
            ),
        ),
        "delete by filter": best_short(
            lambda: reset(N),
            lambda _: run("DELETE FROM raw_products WHERE category = ?", ("electronics",)),
        ),
    }
    conn.close()
    return out


def bench_raw_psycopg(url: str) -> dict[str, dict[str, float]]:
    import psycopg

    conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
    name = f"raw_products_{uuid.uuid4().hex[:8]}"
    conn.execute(
        f"CREATE TABLE {name} (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, price FLOAT8 NOT "
        "NULL, category TEXT NOT NULL, created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP "
        "NOT NULL)"
    )
    conn.commit()
    columns = "name, price, category, created_at, updated_at"

    def tuples(source: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        return [(*row.values(), now, now) for row in source]

    def copy(source: list[dict[str, Any]], binary: bool = False) -> int:
        sql = f"COPY {name} ({columns}) FROM STDIN" + (" (FORMAT BINARY)" if binary else "")
        with conn.cursor() as cursor, cursor.copy(sql) as cp:
            if binary:
                cp.set_types(["text", "float8", "text", "timestamp", "timestamp"])
            for row in tuples(source):
                cp.write_row(row)
        conn.commit()
        return len(source)

    def many(sql: str, params: list[tuple[Any, ...]]) -> int:
        with conn.cursor() as cursor:
            cursor.executemany(sql, params)
        conn.commit()
        return len(params)

    def one(sql: str, params: tuple[Any, ...]) -> int:
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
            count = cursor.rowcount
        conn.commit()
        return count

    def reset(count: int = 0) -> None:
        conn.execute(empty("postgresql", name))
        conn.commit()
        if count:
            copy(rows()[:count])

    insert = f"INSERT INTO {name} ({columns}) VALUES (%s, %s, %s, %s, %s)"
    upsert = (
        f"INSERT INTO {name} (name, price, category, id, created_at, updated_at) VALUES "
        "(%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
        "price = excluded.price, category = excluded.category, updated_at = excluded.updated_at"
    )
    update_filter = (
        f"UPDATE {name} SET price = price * %s, updated_at = now() WHERE category = %s",
        (0.9, "electronics"),
    )
    shared = {
        "update by filter": best_short(lambda: reset(N), lambda _: one(*update_filter)),
        "delete by filter": best_short(
            lambda: reset(N),
            lambda _: one(f"DELETE FROM {name} WHERE category = %s", ("electronics",)),
        ),
    }
    out = {
        "raw psycopg COPY": {"create": best(reset, lambda _: copy(rows())), **shared},
        "raw psycopg COPY (binary)": {"create": best(reset, lambda _: copy(rows(), True))},
        "raw psycopg executemany": {
            "create": best(reset, lambda _: many(insert, tuples(rows()))),
            "upsert": best(lambda: reset(N), lambda _: many(upsert, tuples(rows(N // 2 + 1)))),
            "update rows": best(
                lambda: reset(N),
                lambda _: many(
                    f"UPDATE {name} SET price = %s, updated_at = now() WHERE id = %s",
                    [(2.5, i + 1) for i in range(N)],
                ),
            ),
            **shared,
        },
    }
    conn.execute(f"DROP TABLE {name}")
    conn.commit()
    conn.close()
    return out


def bench_raw_pymysql(url: str) -> dict[str, float]:
    import pymysql

    parsed = sa.engine.make_url(url)
    conn = pymysql.connect(
        host=parsed.host,
        port=parsed.port or 3306,
        user=parsed.username,
        password=parsed.password or "",
        database=parsed.database,
    )
    name = f"raw_products_{uuid.uuid4().hex[:8]}"
    cursor = conn.cursor()
    cursor.execute(
        f"CREATE TABLE {name} (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(255) NOT NULL,"
        " price DOUBLE NOT NULL, category VARCHAR(255) NOT NULL, created_at DATETIME(6) NOT NULL,"
        " updated_at DATETIME(6) NOT NULL)"
    )
    columns = "name, price, category, created_at, updated_at"

    def tuples(source: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        return [(*row.values(), now, now) for row in source]

    def run(sql: str, params: Any, many: bool = False) -> int:
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
        conn.commit()
        return len(params) if many else cursor.rowcount

    insert = f"INSERT INTO {name} ({columns}) VALUES (%s, %s, %s, %s, %s)"

    def reset(count: int = 0) -> None:
        run(empty("mysql", name), ())
        if count:
            run(insert, tuples(rows()[:count]), many=True)

    upsert = (
        f"INSERT INTO {name} (name, price, category, id, created_at, updated_at) VALUES "
        "(%s, %s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE name = VALUES(name), "
        "price = VALUES(price), category = VALUES(category), updated_at = VALUES(updated_at)"
    )
    out = {
        "create": best(reset, lambda _: run(insert, tuples(rows()), many=True)),
        "upsert": best(lambda: reset(N), lambda _: run(upsert, tuples(rows(N // 2 + 1)), True)),
        "update by filter": best_short(
            lambda: reset(N),
            lambda _: run(
                f"UPDATE {name} SET price = price * %s, updated_at = NOW(6) WHERE category = %s",
                (0.9, "electronics"),
            ),
        ),
        "delete by filter": best_short(
            lambda: reset(N),
            lambda _: run(f"DELETE FROM {name} WHERE category = %s", ("electronics",)),
        ),
    }
    cursor.execute(f"DROP TABLE {name}")
    conn.close()
    return out


# -- the tables --------------------------------------------------------------------------


def report(title: str, results: dict[str, dict[str, float]], raw: str) -> str:
    header = ["peer", *OPS]
    lines = [
        [peer, *(f"{r[op]:,.0f}" if op in r else "—" for op in OPS)] for peer, r in results.items()
    ]
    flow = results["DataFlow bulk node"]
    lines.append([f"DataFlow / {raw}", *(_ratio(flow, results[raw], op) for op in OPS)])
    return table(f"{title}: rows per second, {N:,} rows", header, lines)


def _ratio(flow: dict[str, float], peer: dict[str, float], op: str) -> str:
    return f"{flow[op] / peer[op]:.2f}" if op in peer else "—"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgresql", help="also time this PostgreSQL URL")
    parser.add_argument("--mysql", help="also time this MySQL / MariaDB URL")
    parser.add_argument(
        "--tenant",
        metavar="URL",
        help="only time DataFlow's bulk nodes on a plain and on a multi-tenant model at this URL "
        "(on PostgreSQL, log in as a NOSUPERUSER NOBYPASSRLS role to time row-level security)",
    )
    args = parser.parse_args()
    for first_id in (None, 1, N // 2 + 1):  # the input rows exist before any timing
        rows(first_id)
    if args.tenant:
        results = {
            "plain model": bench_dataflow(args.tenant),
            "multi-tenant model": bench_dataflow(args.tenant, tenant="t1"),
        }
        role = sa.engine.make_url(args.tenant).username or "default user"
        header = ["model", *OPS]
        lines = [[m, *(f"{r[op]:,.0f}" for op in OPS)] for m, r in results.items()]
        print(table(f"DataFlow bulk nodes as {role}: rows per second, {N:,} rows", header, lines))
        return
    tmp = tempfile.mkdtemp(prefix="dataflow-bench-")
    sqlite_url = f"sqlite:///{os.path.join(tmp, 'bench.db')}"
    print(f"timing SQLite in {tmp} ...", file=sys.stderr)
    results = {
        "DataFlow bulk node": bench_dataflow(sqlite_url),
        "raw sqlite3 executemany": bench_raw_sqlite(os.path.join(tmp, "raw.db")),
        "SQLAlchemy Core": bench_core(f"sqlite:///{os.path.join(tmp, 'core.db')}"),
    }
    print(report("SQLite (file, WAL)", results, "raw sqlite3 executemany"))
    if args.postgresql:
        print("timing PostgreSQL ...", file=sys.stderr)
        url = sa.engine.make_url(args.postgresql).set(drivername="postgresql+psycopg")
        url_text = url.render_as_string(hide_password=False)
        results = {
            "DataFlow bulk node": bench_dataflow(args.postgresql),
            **bench_raw_psycopg(url_text),
            "SQLAlchemy Core": bench_core(url_text),
        }
        print()
        print(report("PostgreSQL", results, "raw psycopg COPY"))
    if args.mysql:
        print("timing MariaDB ...", file=sys.stderr)
        url = sa.engine.make_url(args.mysql).set(drivername="mysql+pymysql")
        url_text = url.render_as_string(hide_password=False)
        results = {
            "DataFlow bulk node": bench_dataflow(args.mysql),
            "raw PyMySQL executemany": bench_raw_pymysql(url_text),
            "SQLAlchemy Core": bench_core(url_text),
        }
        print()
        print(report("MariaDB", results, "raw PyMySQL executemany"))


if __name__ == "__main__":
    main()
