"""What the model options cost: a plain model beside one with tenancy, soft delete and versions,
and one with the audit log as well, doing the same work through the workflow API.

Run: ``.venv/bin/python bench/features.py`` (SQLite in a temporary directory; add
``--postgresql URL`` and ``--mysql URL`` for the servers). Prints Markdown tables: single
operations per second, and rows per second for a bulk create and a bulk update by filter.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

from _util import rate, table

from dataflow import DataFlow
from kailash import LocalRuntime, WorkflowBuilder

SINGLE = 2000
ROWS = 10_000
ENTERPRISE = {"multi_tenant": True, "soft_delete": True, "versioned": True}
#: Peer -> (model name, its options).
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "plain model": ("BenchPlain", {}),
    "tenant + soft delete + version": ("BenchScoped", ENTERPRISE),
    "... + audit log": ("BenchAudited", {**ENTERPRISE, "audit_log": True}),
}
OPS = ["create", "update", "list 100", "bulk create", "bulk update"]


def _rows_per_second(runtime: LocalRuntime, workflow: Any, count: str) -> float:
    """Best of three runs: the rows the node reports in ``count``, per second."""
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        done = runtime.execute(workflow)[0]["n"][count]
        best = max(best, done / (time.perf_counter() - start))
    return best


def _workflow(node: str, params: dict[str, Any]) -> Any:
    builder = WorkflowBuilder()
    builder.add_node(node, "n", params)
    return builder.build()


def bench_variant(url: str, model: str, options: dict[str, Any]) -> dict[str, float]:
    db = DataFlow(url)
    attrs = {
        "__annotations__": {"name": str, "status": str, "total": float},
        "status": "open",
        "__dataflow__": options,
    }
    db.model(type(model, (), attrs))
    db.create_tables()
    runtime = LocalRuntime()
    scope = {"tenant_id": "acme"} if options.get("multi_tenant") else {}
    rows = [{"name": f"n{i}", "total": float(i % 100)} for i in range(ROWS)]

    first = runtime.execute(_workflow(f"{model}CreateNode", {"name": "a", "total": 1.0, **scope}))
    record = first[0]["n"]["id"]
    create = _workflow(f"{model}CreateNode", {"name": "a", "total": 1.0, **scope})
    update = _workflow(f"{model}UpdateNode", {"id": record, "total": 2.0, **scope})
    bulk = _workflow(f"{model}BulkCreateNode", {"data": rows, **scope})
    runtime.execute(bulk)  # rows for the list to page through
    if db.dialect == "postgresql":
        # What autovacuum does soon after a load: without statistics the planner takes the
        # tenant index for a list that the primary key serves in order.
        with db.database.engine.begin() as conn:
            conn.exec_driver_sql(f"ANALYZE {db.get_model(model).table_name}")
    listing = _workflow(
        f"{model}ListNode", {"filter": {"total": {"$gte": 50.0}}, "limit": 100, **scope}
    )
    changes = _workflow(
        f"{model}BulkUpdateNode",
        {"filter": {"total": {"$lt": 50.0}}, "update": {"status": "done"}, **scope},
    )
    out = {
        "create": rate(lambda i: runtime.execute(create), SINGLE),
        "update": rate(lambda i: runtime.execute(update), SINGLE),
        "list 100": rate(lambda i: runtime.execute(listing), SINGLE // 4),
        "bulk create": _rows_per_second(runtime, bulk, "inserted"),
        "bulk update": _rows_per_second(runtime, changes, "updated"),
    }
    with db.database.engine.begin() as conn:
        db.metadata.drop_all(conn)
        if options.get("audit_log"):
            db.audit_log.table.drop(conn)
    db.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgresql", help="also time this PostgreSQL URL")
    parser.add_argument("--mysql", help="also time this MySQL / MariaDB URL")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="dataflow-bench-")
    sections = [("SQLite (file, WAL)", f"sqlite:///{os.path.join(tmp, 'features.db')}")]
    if args.postgresql:
        sections.append(("PostgreSQL", args.postgresql))
    if args.mysql:
        sections.append(("MariaDB", args.mysql))
    for title, url in sections:
        results = {peer: bench_variant(url, *variant) for peer, variant in VARIANTS.items()}
        rows = [[peer, *(f"{r[op]:,.0f}" for op in OPS)] for peer, r in results.items()]
        plain = results["plain model"]
        for peer, r in list(results.items())[1:]:
            rows.append([f"{peer} / plain", *(f"{r[op] / plain[op]:.2f}" for op in OPS)])
        heading = f"{title}: operations per second (bulk: rows per second)"
        print(table(heading, ["model", *OPS], rows))
        print()


if __name__ == "__main__":
    main()
