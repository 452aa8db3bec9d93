"""DataFlow(monitoring=True): statement counts and timings, the slow-query log, pool state."""

from __future__ import annotations

import logging

import pytest

from dataflow import ConfigurationError, DataFlow
from tests.dataflow.conftest import run_node


def define(db: DataFlow) -> DataFlow:
    @db.model
    class Member:
        name: str
        email: str

    db.create_tables()
    return db


def test_every_statement_is_counted_and_timed(url):
    db = define(DataFlow(url, monitoring=True))
    before = db.metrics()["queries"]["count"]
    run_node("MemberCreateNode", {"name": "a", "email": "a@x"})
    run_node("MemberBulkCreateNode", {"data": [{"name": "b", "email": "b@x"}]})
    run_node("MemberListNode", {"filter": {"name": "a"}})
    queries = db.metrics()["queries"]
    assert queries["count"] >= before + 3
    assert sum(queries["histogram"].values()) == queries["count"]
    assert queries["total_ms"] > 0 and queries["max_ms"] >= queries["mean_ms"] > 0
    assert db.metrics()["pool"]["class"]
    db.close()


def test_slow_statements_are_logged_without_their_values(url, caplog):
    db = define(DataFlow(url, monitoring=True, slow_query_threshold=0))
    with caplog.at_level(logging.WARNING, logger="dataflow.slow_query"):
        run_node("MemberCreateNode", {"name": "a", "email": "private@example.com"})
    logged = [r.getMessage() for r in caplog.records if r.name == "dataflow.slow_query"]
    assert any("INSERT INTO members" in m for m in logged)
    assert all("private@example.com" not in m for m in logged)
    assert db.metrics()["queries"]["slow"] >= 1
    db.close()


def test_without_monitoring_only_the_pool_is_reported(url):
    db = define(DataFlow(url))
    run_node("MemberCreateNode", {"name": "a", "email": "a@x"})
    metrics = db.metrics()
    assert "queries" not in metrics and "pool" in metrics
    db.close()


def test_a_bad_threshold_is_refused():
    with pytest.raises(ConfigurationError, match="slow_query_threshold is in milliseconds"):
        DataFlow(":memory:", monitoring=True, slow_query_threshold="fast")
