"""``$regex`` answers in time linear in the text on every backend; SQLite's REGEXP is RE2.

Python's backtracking ``re`` took 24 s on ``^(a+)+$`` against 29 characters, doubling with
each one more; ``bench/regex.py`` times these patterns.
"""

from __future__ import annotations

import pytest

from dataflow import DatabaseError, DataFlow
from tests.dataflow.conftest import failure, run_node

PATHOLOGICAL = ["^(a+)+$", "^(a|aa)+$", "^(a*)*b$", "^(?:a|a?)+$"]


@pytest.fixture
def notes(db: DataFlow) -> DataFlow:
    @db.model
    class Note:
        text: str

    for text in ("a" * 40 + "!", "a" * 40, "a" * 39 + "b"):
        run_node("NoteCreateNode", {"text": text})
    return db


def matching(pattern: str) -> list[str]:
    records = run_node("NoteListNode", {"filter": {"text": {"$regex": pattern}}})["records"]
    return [r["text"] for r in records]


@pytest.mark.parametrize("pattern", PATHOLOGICAL)
def test_catastrophic_patterns_answer_with_the_right_rows(notes, pattern):
    expected = {
        "^(a+)+$": ["a" * 40],
        "^(a|aa)+$": ["a" * 40],
        "^(a*)*b$": ["a" * 39 + "b"],
        "^(?:a|a?)+$": ["a" * 40],
    }
    assert matching(pattern) == expected[pattern]


@pytest.mark.sqlite_only
def test_sqlite_regexp_is_dataflows_linear_time_function(notes):
    with notes.database.engine.connect() as conn:
        found = conn.exec_driver_sql(
            "SELECT count(*) FROM notes WHERE text REGEXP '^(a+)+$'"
        ).scalar()
    assert found == 1


@pytest.mark.sqlite_only
def test_the_end_of_text_means_the_same_on_sqlite(notes):
    run_node("NoteCreateNode", {"text": "line\n"})
    assert matching("line$") == []  # $ is the end of the text, not before a final newline
    assert matching("line\\n$") == ["line\n"]
    assert matching("^l.*\\n$") == ["line\n"]  # . matches a newline


@pytest.mark.sqlite_only
def test_a_pattern_too_large_for_re2_is_refused_with_what_to_change(notes):
    error = failure("NoteListNode", {"filter": {"text": {"$regex": "(?:a{200}){200}"}}})
    assert isinstance(error, DatabaseError)
    assert error.sqlstate == "2201B"  # PostgreSQL's invalid_regular_expression
    assert "too large for SQLite's regular expression engine" in str(error)
    assert "use smaller counted repeats" in str(error)


@pytest.mark.sqlite_only
def test_a_regex_query_past_its_time_budget_is_stopped_with_a_clear_error(notes, monkeypatch):
    from dataflow.dialects import sqlite_functions

    rows = [{"text": f"note {i}"} for i in range(3000)]
    run_node("NoteBulkCreateNode", {"data": rows})
    monkeypatch.setattr(sqlite_functions, "REGEX_BUDGET", 0.0)
    error = failure("NoteListNode", {"filter": {"text": {"$regex": "^note 29"}}})
    assert isinstance(error, DatabaseError)
    assert error.sqlstate == "57014"
    assert "a $regex query ran past its 0 s budget on SQLite and was stopped" in str(error)
    # Statements without a $regex have no budget; the connection goes on working.
    assert run_node("NoteCountNode", {"filter": {"text": {"$like": "note 29%"}}})["count"] == 111
    monkeypatch.setattr(sqlite_functions, "REGEX_BUDGET", 10.0)
    assert len(matching("^note 29")) == 111
