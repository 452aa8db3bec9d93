"""Tables follow the models: created, reused, extended; other differences are refused."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from dataflow import DataFlow, MigrationError
from tests.dataflow.conftest import run_node


def columns(db: DataFlow, table: str) -> set[str]:
    with db.database.engine.connect() as conn:
        return {c["name"] for c in sa.inspect(conn).get_columns(table)}


def test_a_table_is_created_with_the_automatic_columns(db):
    @db.model
    class User:
        name: str

    db.create_tables()
    assert columns(db, "users") == {"id", "name", "created_at", "updated_at"}


def test_an_existing_identical_table_is_reused_with_its_rows(url):
    first = DataFlow(url)

    @first.model
    class User:
        name: str

    run_node("UserCreateNode", {"name": "kept"})
    first.close()

    second = DataFlow(url)

    @second.model
    class User:  # noqa: F811 - the same model, defined again by a second process
        name: str

    assert second.create_tables() == []
    assert [r["name"] for r in run_node("UserListNode")["records"]] == ["kept"]
    second.close()


def test_a_new_nullable_or_defaulted_column_is_added(url):
    first = DataFlow(url)

    @first.model
    class User:
        name: str

    run_node("UserCreateNode", {"name": "old"})
    first.close()

    second = DataFlow(url)

    @second.model
    class User:  # noqa: F811
        name: str
        nickname: str | None = None
        score: int = 10
        active: bool = True
        __indexes__ = [{"name": "ix_users_score", "fields": ["score"]}]

    done = second.create_tables()
    assert "added column users.nickname" in done
    assert "created index ix_users_score" in done
    [old] = run_node("UserListNode")["records"]
    assert (old["nickname"], old["score"], old["active"]) == (None, 10, True)
    second.close()


def test_a_required_new_column_or_a_changed_type_is_refused(url):
    first = DataFlow(url)

    @first.model
    class User:
        name: str
        age: int

    first.create_tables()
    first.close()

    second = DataFlow(url)

    @second.model
    class User:  # noqa: F811
        name: str
        age: str
        email: str

    with pytest.raises(MigrationError) as info:
        second.create_tables()
    message = str(info.value)
    assert "table 'users' exists and differs from the model" in message
    assert "users.email is missing from the table" in message
    assert "users.age" in message
    assert columns(second, "users") == {"id", "name", "age", "created_at", "updated_at"}
    second.close()


def test_tablename_is_honoured(db):
    @db.model
    class Person:
        name: str
        __tablename__ = "people_v2"

    run_node("PersonCreateNode", {"name": "x"})
    assert "people_v2" in sa.inspect(db.database.engine).get_table_names()
