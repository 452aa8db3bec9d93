"""What transactions cost: a scope against a commit per node, and a saga against a plain run.

Ten creates: each committed on its own (no scope), in one transaction (TransactionScopeNode),
and in one transaction with a savepoint per write (a scope with ``rollback_on_error`` off),
beside SQLAlchemy Core doing the same inserts. Run: ``.venv/bin/python bench/transactions.py``
(SQLite in a temporary directory; add ``--postgresql URL`` to time PostgreSQL too).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
from typing import Any

import sqlalchemy as sa
from _util import core_engine, rate, table

from dataflow import DataFlow
from kailash import LocalRuntime, Node, NodeParameter, WorkflowBuilder

WRITES = 10
RUNS = 300


class UndoItem(Node):
    parameters = {n: NodeParameter(n) for n in ("step_input", "step_output")}

    def run(self, step_input: dict, step_output: dict | None) -> dict[str, Any]:
        return {}


def bench_dataflow(url: str) -> dict[str, float]:
    db = DataFlow(url)

    @db.model
    class BenchItem:
        name: str

    db.create_tables()
    db.register_node(UndoItem)
    runtime = LocalRuntime()

    def creates(scope: dict | None) -> Any:
        builder = WorkflowBuilder()
        previous = None
        if scope is not None:
            previous = builder.add_node("TransactionScopeNode", "tx", scope)
        for i in range(WRITES):
            node = builder.add_node("BenchItemCreateNode", f"c{i}", {"name": "x"})
            if previous:
                builder.add_connection(previous, "result", node, "input")
            previous = node
        return builder.build()

    steps = [
        {"name": f"s{i}", "node": "BenchItemCreateNode", "params": {"name": "x"}} for i in range(3)
    ]
    saga = WorkflowBuilder()
    saga.add_node(
        "TransactionManagerNode",
        "saga",
        {"steps": [{**s, "compensation": "UndoItem"} for s in steps]},
    )
    plain = WorkflowBuilder()
    for s in steps:
        plain.add_node(s["node"], s["name"], s["params"])
    flows = {
        "commit per write": creates(None),
        "one transaction": creates({}),
        "savepoint per write": creates({"rollback_on_error": False}),
        "three steps": plain.build(),
        "three-step saga": saga.build(),
    }
    out = {name: rate(lambda i, w=w: runtime.execute(w), RUNS) for name, w in flows.items()}
    db.close()
    return out


def bench_core(url: str) -> dict[str, float]:
    engine = core_engine(url, immediate=True)

    metadata = sa.MetaData()
    items = sa.Table(
        "core_items",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime),
        sa.Column("updated_at", sa.DateTime),
    )
    metadata.drop_all(engine)
    metadata.create_all(engine)
    insert = items.insert().returning(*items.c)

    def write(conn: sa.Connection) -> None:
        now = dt.datetime.now(dt.UTC)
        conn.execute(insert, {"name": "x", "created_at": now, "updated_at": now}).one()

    def per_insert(i: int) -> None:
        for _ in range(WRITES):
            with engine.begin() as conn:
                write(conn)

    def one_transaction(savepoints: bool) -> Any:
        def run(i: int) -> None:
            with engine.begin() as conn:
                for _ in range(WRITES):
                    if savepoints:
                        with conn.begin_nested():
                            write(conn)
                    else:
                        write(conn)

        return run

    out = {
        "commit per write": rate(per_insert, RUNS),
        "one transaction": rate(one_transaction(False), RUNS),
        "savepoint per write": rate(one_transaction(True), RUNS),
    }
    metadata.drop_all(engine)
    engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgresql", help="also time this PostgreSQL URL")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="dataflow-bench-")
    sections = [("SQLite (file, WAL)", f"sqlite:///{os.path.join(tmp, 'bench.db')}")]
    if args.postgresql:
        sections.append(("PostgreSQL", args.postgresql))
    for title, url in sections:
        flow = bench_dataflow(url)
        core = bench_core(url.replace("postgresql://", "postgresql+psycopg://"))
        ways = ["commit per write", "one transaction", "savepoint per write"]
        rows = [
            ["DataFlow workflow", *(f"{flow[w]:,.0f}" for w in ways)],
            ["SQLAlchemy Core", *(f"{core[w]:,.0f}" for w in ways)],
            ["DataFlow / Core", *(f"{flow[w] / core[w]:.2f}" for w in ways)],
        ]
        print(table(f"{title}: runs of {WRITES} creates per second", ["peer", *ways], rows))
        print()
        saga_rows = [
            ["three creates, plain workflow", f"{flow['three steps']:,.0f}"],
            ["the same three as saga steps", f"{flow['three-step saga']:,.0f}"],
            ["saga / plain", f"{flow['three-step saga'] / flow['three steps']:.2f}"],
        ]
        print(table(f"{title}: runs per second", ["workflow", "runs/s"], saga_rows))
        print()
    print("Saga runs write the saga log before and after each step.", file=sys.stderr)


if __name__ == "__main__":
    main()
