"""Statement timing for ``DataFlow(monitoring=True)``: counters, a slow-query log, pool state.

Timing hooks SQLAlchemy's cursor events, so every statement DataFlow runs is counted, bulk
paths included. Statements slower than ``slow_query_threshold`` milliseconds are logged at
WARNING on the ``dataflow.slow_query`` logger with their SQL, never their parameters (they
hold row values).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

slow_log = logging.getLogger("dataflow.slow_query")

#: Upper bounds (ms) of the latency histogram's buckets; the last bucket is everything above.
BUCKETS_MS = (1.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0)


@dataclass(frozen=True, slots=True)
class QueryStats:
    """What ``db.metrics()["queries"]`` reports."""

    count: int
    total_ms: float
    max_ms: float
    slow: int
    #: Statements per latency bucket, keyed by the bucket's upper bound in ms ("+Inf" last).
    histogram: dict[str, int]

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.count if self.count else 0.0


class StatementMonitor:
    """Counts and times the statements of one engine."""

    def __init__(self, engine: Engine, slow_ms: float) -> None:
        self.slow_ms = slow_ms
        self._lock = threading.Lock()
        self._count = 0
        self._total = 0.0
        self._max = 0.0
        self._slow = 0
        self._buckets = [0] * (len(BUCKETS_MS) + 1)
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        conn.info.setdefault("dataflow_started", []).append(time.perf_counter())

    def _after(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        elapsed = (time.perf_counter() - conn.info["dataflow_started"].pop()) * 1000.0
        bucket = next((i for i, top in enumerate(BUCKETS_MS) if elapsed <= top), len(BUCKETS_MS))
        with self._lock:
            self._count += 1
            self._total += elapsed
            self._max = max(self._max, elapsed)
            self._buckets[bucket] += 1
            slow = elapsed > self.slow_ms
            if slow:
                self._slow += 1
        if slow:
            slow_log.warning(
                "slow query (%.1f ms > %.0f ms): %s",
                elapsed,
                self.slow_ms,
                " ".join(statement.split()),
            )

    def stats(self) -> QueryStats:
        with self._lock:
            labels = [f"{b:g}" for b in BUCKETS_MS] + ["+Inf"]
            return QueryStats(
                self._count,
                self._total,
                self._max,
                self._slow,
                dict(zip(labels, self._buckets, strict=True)),
            )


def pool_state(engine: Engine) -> dict[str, Any]:
    """Connections of the engine's pool: size, checked out, overflow (where the pool has them)."""
    pool = engine.pool
    state: dict[str, Any] = {"class": type(pool).__name__}
    for name in ("size", "checkedout", "overflow", "checkedin"):
        method = getattr(pool, name, None)
        if callable(method):
            state[name.replace("checkedout", "checked_out").replace("checkedin", "checked_in")] = (
                method()
            )
    return state
