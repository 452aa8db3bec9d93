"""DataFlow's options and where its data lives."""

from __future__ import annotations

import logging
import sqlite3
import threading

import pytest

import dataflow.engine
from dataflow import ConfigurationError, DataFlow
from tests.dataflow.conftest import run_node


def test_without_database_url_a_sqlite_file_in_the_working_directory_is_used(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr(dataflow.engine, "_announced_default", False)
    with caplog.at_level(logging.INFO, logger="dataflow"):
        db = DataFlow()
        DataFlow().close()

    @db.model
    class Note:
        text: str

    run_node("NoteCreateNode", {"text": "hi"})
    db.close()
    announcements = [r for r in caplog.records if "DATABASE_URL is not set" in r.getMessage()]
    assert len(announcements) == 1
    assert announcements[0].levelno == logging.INFO
    with sqlite3.connect(tmp_path / "dataflow.db") as conn:
        assert conn.execute("SELECT text FROM notes").fetchall() == [("hi",)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_database_url_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    db = DataFlow()
    assert db.target.url.database == str(tmp_path / "env.db")
    db.close()


def test_a_relative_sqlite_url_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = DataFlow("sqlite:///app.db")

    @db.model
    class Note:
        text: str

    run_node("NoteCreateNode", {"text": "x"})
    db.close()
    assert (tmp_path / "app.db").exists()


@pytest.mark.parametrize("url", [":memory:", "sqlite:///:memory:"])
def test_memory_databases_are_shared_by_every_node_and_thread(url):
    db = DataFlow(url)

    @db.model
    class Note:
        text: str

    run_node("NoteCreateNode", {"text": "main"})
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for j in range(20):
                run_node("NoteCreateNode", {"text": f"{i}-{j}"})
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert run_node("NoteCountNode") == {"count": 81}
    db.close()


def test_unknown_options_are_refused_with_the_known_ones():
    with pytest.raises(ConfigurationError) as info:
        DataFlow(":memory:", pool_sise=5)
    message = str(info.value)
    assert "unknown option(s): pool_sise" in message
    assert "Did you mean 'pool_size'?" in message
    assert "pool_max_overflow" in message


def test_unsupported_schemes_are_refused():
    with pytest.raises(ConfigurationError, match="unsupported database scheme 'oracle'"):
        DataFlow("oracle://x/y")


def test_pool_options_reach_the_engine(tmp_path):
    db = DataFlow(
        f"sqlite:///{tmp_path / 'p.db'}",
        pool_size=7,
        pool_max_overflow=3,
        pool_recycle=60,
        pool_pre_ping=True,
        pool_reset_on_return="commit",
        echo=False,
    )
    pool = db.database.engine.pool
    assert pool.size() == 7
    assert pool._max_overflow == 3
    assert pool._recycle == 60
    assert pool._pre_ping is True
    db.close()


def test_connection_pool_size_caps_the_total_connections(tmp_path):
    db = DataFlow(
        f"sqlite:///{tmp_path / 'p.db'}",
        pool_size=20,
        pool_max_overflow=40,
        connection_pool_size=50,
    )
    assert db.database.engine.pool._max_overflow == 30
    db.close()
    with pytest.raises(ConfigurationError, match="cannot be below pool_size"):
        DataFlow(":memory:", pool_size=20, connection_pool_size=10)


def test_bad_option_values_are_refused():
    with pytest.raises(ConfigurationError, match="pool_size must be a non-negative int"):
        DataFlow(":memory:", pool_size="big")
    with pytest.raises(ConfigurationError, match="pool_reset_on_return"):
        DataFlow(":memory:", pool_reset_on_return="sometimes")
    with pytest.raises(ConfigurationError, match="tenant_isolation must be"):
        DataFlow(":memory:", tenant_isolation="loose")
    with pytest.raises(ConfigurationError, match="tenants share tables"):
        DataFlow(":memory:", tenant_database_prefix="t_")
