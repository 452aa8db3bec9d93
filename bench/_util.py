"""Timing and table printing shared by the benchmarks."""

from __future__ import annotations

import gc
import sqlite3
import time
from collections.abc import Callable

import sqlalchemy as sa


def rate(fn: Callable[[int], None], n: int, repeat: int = 3) -> float:
    """Best-of-``repeat`` operations per second for ``fn(i)`` called ``n`` times."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        for i in range(n):
            fn(i)
        best = min(best, time.perf_counter() - start)
    return n / best


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| "
        + " | ".join(
            str(c).rjust(w) if i else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        + " |"
        for r in rows
    ]
    return "\n".join([f"### {title}", "", line, sep, *body])


def core_engine(url: str, immediate: bool = False) -> sa.Engine:
    """A SQLAlchemy engine; SQLite files in WAL mode, as DataFlow runs them.

    ``immediate``: SQLite transactions begin with ``BEGIN IMMEDIATE`` issued by SQLAlchemy
    rather than by pysqlite, which is also what lets savepoints work.
    """
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: sqlite3.Connection, _: object) -> None:
            if immediate:
                dbapi_conn.isolation_level = None
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")

        if immediate:

            @sa.event.listens_for(engine, "begin")
            def _begin(conn: sa.Connection) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
