"""Driver errors become DataFlow errors that keep SQLSTATE and constraint, never row values.

Not in the message, and not in the exception chain that ``logger.exception``, an uncaught
error or an error tracker prints.
"""

from __future__ import annotations

import decimal
import logging
import traceback

import pytest
import sqlalchemy as sa

from dataflow import DatabaseError, DataFlow, IntegrityError
from tests.dataflow.conftest import failure, run_node

SECRET = "alice.secret@example.org"
INT64_MAX = 2**63 - 1


def define_people(db: DataFlow) -> DataFlow:
    """People and their orders, and one person whose age and score are near their limits."""

    @db.model
    class Person:
        email: str
        age: int = 0
        score: float = 0.0
        __indexes__ = [{"name": "people_email_key", "fields": ["email"], "unique": True}]

    @db.model
    class Order:
        person_id: int | None = None
        note: str = ""

    run_node("PersonCreateNode", {"email": SECRET, "age": INT64_MAX - 1, "score": 1e308})
    return db


@pytest.fixture
def people(db: DataFlow) -> DataFlow:
    return define_people(db)


def printed(error: BaseException, caplog: pytest.LogCaptureFixture) -> str:
    """Everything a traceback and a ``logger.exception`` line show of ``error``."""
    log = logging.getLogger("tests.driver_errors")
    with caplog.at_level(logging.ERROR, logger="tests.driver_errors"):
        try:
            raise error
        except BaseException:
            log.exception("the write failed")
    return "".join(traceback.format_exception(error)) + caplog.text


def assert_no_values(text: str, *values: str) -> None:
    for value in (SECRET, *values):
        assert value not in text
    assert "[parameters:" not in text
    assert "DETAIL" not in text and "Duplicate entry" not in text


def test_a_unique_violation_keeps_sqlstate_and_constraint_but_no_value(people, backend, caplog):
    error = failure("PersonCreateNode", {"email": SECRET})
    assert isinstance(error, IntegrityError)
    assert error.sqlstate == "23505"
    # SQLite names the columns instead of the index.
    expected = "persons.email" if backend == "sqlite" else "people_email_key"
    assert error.constraint == expected
    assert str(error) == (
        f"PersonCreateNode 'n': the database refused the write: unique constraint {expected}"
    )
    assert_no_values(printed(error, caplog))


def test_a_foreign_key_violation_keeps_sqlstate_and_constraint_but_no_value(
    people, backend, caplog
):
    error = failure("OrderCreateNode", {"person_id": 987654, "note": SECRET})
    assert isinstance(error, IntegrityError)
    assert error.sqlstate == "23503"
    # SQLite does not name the constraint that failed.
    assert error.constraint == (None if backend == "sqlite" else "fk_orders_person_id")
    assert_no_values(printed(error, caplog), "987654")


def test_a_not_null_violation_keeps_sqlstate_but_no_value(people, caplog):
    table = people.statements("Person").table
    with pytest.raises(IntegrityError) as caught, people.connection("raw update") as conn:
        conn.execute(sa.update(table).where(table.c.email == SECRET).values(email=None))
    error = caught.value
    assert error.sqlstate == "23502"
    assert str(error).startswith("raw update: the database refused the write: not-null")
    assert_no_values(printed(error, caplog))


@pytest.mark.parametrize(
    ("change", "column"), [({"$inc": {"age": 5}}, "age"), ({"$multiply": {"score": 10.0}}, "score")]
)
def test_arithmetic_that_overflows_is_refused_on_every_backend(people, change, column, caplog):
    error = failure("PersonBulkUpdateNode", {"filter": {"email": SECRET}, "update": change})
    assert type(error) is DatabaseError
    assert error.sqlstate == "22003"
    assert_no_values(printed(error, caplog))
    # Nothing was stored: an integer column never holds a float, a float column no infinity.
    record = run_node("PersonListNode", {})["records"][0]
    assert (record["age"], record["score"]) == (INT64_MAX - 1, 1e308)
    assert type(record["age"]) is int


def test_a_value_the_driver_cannot_send_is_a_database_error_without_it(people, caplog):
    table = people.statements("Person").table
    with pytest.raises(DatabaseError) as caught, people.connection("raw update") as conn:
        conn.execute(sa.update(table).values(age=SECRET, score=decimal.Decimal("sNaN")))
    assert_no_values(printed(caught.value, caplog))
