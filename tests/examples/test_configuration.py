"""The guide's connection and configuration blocks, with only the database URL substituted."""

from __future__ import annotations

import pytest

from dataflow import DataFlow
from tests.examples.guide import block

GUIDE_URL = "postgresql://user:pass@localhost/db"


def run_with_url(heading: str, url: str, monkeypatch, tmp_path) -> dict:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", url)
    code = block(heading)
    assert GUIDE_URL in code
    # The blocks continue the quickstart, which imported DataFlow.
    scope: dict = {"__name__": "__guide__", "DataFlow": DataFlow}
    exec(compile(code.replace(GUIDE_URL, url), f"guide:{heading}", "exec"), scope)
    return scope


@pytest.mark.parametrize("fresh_url", ["postgresql"], indirect=True)
def test_production_pattern_connects_with_the_pool_it_asks_for(fresh_url, monkeypatch, tmp_path):
    scope = run_with_url("Production Pattern", fresh_url, monkeypatch, tmp_path)
    db = scope["db"]
    assert db.dialect == "postgresql"
    pool = db.database.engine.pool
    assert (pool.size(), pool._max_overflow, pool._recycle) == (20, 30, 3600)
    assert db.database.engine.echo is False
    assert db.config.monitoring is True

    @db.model
    class Probe:
        name: str

    assert db.create_tables() == ["created table probes"]
    db.close()


@pytest.mark.parametrize("fresh_url", ["postgresql"], indirect=True)
def test_configuration_patterns_combine_into_one_instance(fresh_url, monkeypatch, tmp_path):
    scope = run_with_url("Configuration Patterns", fresh_url, monkeypatch, tmp_path)
    db = scope["db"]
    config = db.config
    # pool_size 20 with connection_pool_size 50 leaves room for 30 overflow connections.
    assert (config.pool_size, config.pool_max_overflow, config.connection_pool_size) == (20, 30, 50)
    assert db.database.engine.pool._pre_ping is True
    assert (config.multi_tenant, config.tenant_id_header, config.cache_backend) == (
        True,
        "X-Tenant-ID",
        "redis",
    )
    db.close()
