"""The guide's zero-config example, word for word, on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.examples.guide import block, run_block

HEADING = "Zero-Config Basic Pattern"


def check_results(scope: dict) -> None:
    results = scope["results"]
    created = results["create"]
    assert isinstance(created["id"], int)
    assert created["name"] == "Alice"
    assert created["email"] == "alice@example.com"
    assert created["active"] is True
    assert isinstance(created["created_at"], dt.datetime)
    listed = results["list"]["records"]
    assert created in listed
    assert all(r["active"] is True for r in listed)
    assert len(scope["run_id"]) == 32


def test_the_block_is_the_guides_first():
    assert "db = DataFlow()" in block(HEADING)
    assert 'workflow.add_connection("create", "result", "list", "input")' in block(HEADING)


def test_quickstart_on_embedded_sqlite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    scope = run_block(HEADING)
    check_results(scope)
    assert scope["results"]["list"]["records"] == [scope["results"]["create"]]
    assert (tmp_path / "dataflow.db").exists()
    scope["db"].close()


@pytest.mark.parametrize("fresh_url", ["postgresql", "mysql"], indirect=True)
def test_quickstart_with_database_url_on_a_server(fresh_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", fresh_url)
    scope = run_block(HEADING)
    check_results(scope)
    assert not (tmp_path / "dataflow.db").exists()
    scope["db"].close()
