"""Driver errors -> DataFlow errors that keep SQLSTATE and constraint name, never row values.

A driver's message can quote the row (PostgreSQL's ``DETAIL: Key (email)=(alice@...)``,
MariaDB's ``Duplicate entry 'alice@...'``) and SQLAlchemy's adds the statement parameters. So
the DataFlow error is built from the parts that hold no values, and the driver's exception is
not chained to it: a logger or an error tracker printing the chain prints nothing more.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exc as sa_exc

from dataflow.dialects import sqlite_functions
from dataflow.errors import DatabaseError, IntegrityError

#: What each SQLSTATE means, for messages.
_KINDS = {
    "23505": "unique constraint",
    "23502": "not-null constraint",
    "23503": "foreign key constraint",
    "23514": "check constraint",
}
#: MariaDB's error numbers -> the standard SQLSTATE (its own is 23000 or HY000 for all these).
_MYSQL_STATES = {
    1062: "23505",
    1586: "23505",
    1451: "23503",
    1452: "23503",
    1048: "23502",
    1364: "23502",
    3819: "23514",
    4025: "23514",
    1406: "22001",
    1264: "22003",
    1690: "22003",
    1366: "22007",
    1292: "22007",
}
#: SQLite's messages -> the standard SQLSTATE.
_SQLITE_STATES = {
    "UNIQUE constraint failed": "23505",
    "FOREIGN KEY constraint failed": "23503",
    "NOT NULL constraint failed": "23502",
    "CHECK constraint failed": "23514",
}
#: Where a server message quotes a value, and what stands in for it.
_VALUES = (
    (re.compile(r"Duplicate entry '.*' for key"), "Duplicate entry for key"),
    (re.compile(r"(value:?) '.*?'( for|$)"), r"\1\2"),
    (re.compile(r"(out of range) in '.*'$"), r"\1"),
    (re.compile(r"(invalid input (?:syntax|value) for [^:]*):.*$"), r"\1"),
)
_MYSQL_NAMES = (
    re.compile(r"for key '([^']+)'"),
    re.compile(r"CONSTRAINT `([^`]+)`"),
)


@dataclass(frozen=True, slots=True)
class Reading:
    """What DataFlow keeps of a driver's error: no row values."""

    sqlstate: str | None
    constraint: str | None
    text: str


def _without_values(text: str) -> str:
    for pattern, replacement in _VALUES:
        text = pattern.sub(replacement, text)
    return text


def read(orig: BaseException | None) -> Reading:
    """The SQLSTATE, constraint name and a value-free first line of a DBAPI error."""
    if orig is None:
        return Reading(None, None, "the driver gave no reason")
    diag = getattr(orig, "diag", None)
    if diag is not None:  # psycopg: the primary message, never the DETAIL line
        text = diag.message_primary or str(orig).splitlines()[0]
        return Reading(getattr(orig, "sqlstate", None), diag.constraint_name, text)
    args: tuple[Any, ...] = getattr(orig, "args", ())
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):  # PyMySQL
        errno, text = args
        name = next((m.group(1) for p in _MYSQL_NAMES if (m := p.search(text))), None)
        return Reading(_MYSQL_STATES.get(errno), name, f"({errno}) {text}")
    text = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
    if text in (sqlite_functions.RAISED, sqlite_functions.INTERRUPTED):
        # A DataFlow function of the SQLite connection refused a value, or its regex budget
        # stopped the statement (an interrupt has other causes too: then there is no reason).
        # The reason waits in this thread once; the error keeps it for later readings.
        if not hasattr(orig, "dataflow_refusal"):
            setattr(orig, "dataflow_refusal", sqlite_functions.take_refusal())  # noqa: B010
        refusal = getattr(orig, "dataflow_refusal")  # noqa: B009
        if refusal is not None:
            return Reading(refusal.sqlstate, None, refusal.reason)
    # SQLite names the constraint's columns ("UNIQUE constraint failed: users.email"), or the
    # constraint itself for a CHECK, never the values.
    head, _, names = text.partition(": ")
    state = _SQLITE_STATES.get(head)
    return Reading(state, names or None if state else None, text)


def describe(exc: sa_exc.StatementError) -> str:
    """What the database said, without the statement or any row values."""
    if not isinstance(exc, sa_exc.DBAPIError):
        # The value could not be sent (a type's bind processor refused it); its message may
        # quote the value, so only its kind is told.
        return f"a value could not be sent to the database ({type(exc.orig).__name__})"
    reading = read(exc.orig)
    if reading.sqlstate in _KINDS:
        kind = _KINDS[reading.sqlstate or ""]
        named = f" {reading.constraint}" if reading.constraint else ""
        return f"the database refused the write: {kind}{named}"
    if isinstance(exc, sa_exc.IntegrityError):
        return f"the database refused the write: {_without_values(reading.text)}"
    return f"{type(exc.orig).__name__}: {_without_values(reading.text)}"


def translate(exc: sa_exc.StatementError, label: str, row: int | None = None) -> DatabaseError:
    """The DataFlow error for a SQLAlchemy one, its message starting with ``label``.

    It chains nothing: raising it inside an ``except`` block still prints no driver error.
    """
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else None
    reading = read(orig) if orig is not None else Reading(None, None, "")
    # MariaDB reports some constraint violations (a CHECK, a missing default) as other errors.
    integrity = isinstance(exc, sa_exc.IntegrityError) or (reading.sqlstate or "")[:2] == "23"
    kind = IntegrityError if integrity else DatabaseError
    error = kind(
        f"{label}: {describe(exc)}",
        row=row,
        sqlstate=reading.sqlstate,
        constraint=reading.constraint,
        driver_error=f"{type(exc.orig).__module__}.{type(exc.orig).__qualname__}",
    )
    error.__suppress_context__ = True
    return error


@contextmanager
def wrapped(label: str) -> Iterator[None]:
    """Re-raise SQLAlchemy errors as DataFlow errors that name ``label``."""
    try:
        yield
    except sa_exc.StatementError as exc:
        raise translate(exc, label) from None
