"""Driver errors -> DataFlow errors, without copying row values into messages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc

from dataflow.errors import DatabaseError, IntegrityError


def _integrity_detail(error: sa_exc.IntegrityError) -> str:
    orig = error.orig
    diag = getattr(orig, "diag", None)
    if diag is not None:  # psycopg: name the constraint, never the DETAIL line with values
        parts = [p for p in (diag.constraint_name, diag.table_name, diag.column_name) if p]
        sqlstate = getattr(orig, "sqlstate", "") or ""
        kind = {
            "23505": "unique constraint",
            "23502": "not-null constraint",
            "23503": "foreign key constraint",
            "23514": "check constraint",
        }.get(sqlstate, "constraint")
        return f"{kind} {' / '.join(parts)}".strip()
    text = str(orig).splitlines()[0] if orig is not None else str(error)
    # MySQL: "Duplicate entry 'alice@x' for key 'users.ix_email'" -> keep the key only.
    match = re.search(r"Duplicate entry .* for key '([^']+)'", text)
    if match:
        return f"unique constraint {match.group(1)}"
    return text  # SQLite names the constraint and columns, never the values


def describe(exc: sa_exc.DBAPIError) -> str:
    """What the database said, without the statement or any row values."""
    if isinstance(exc, sa_exc.IntegrityError):
        return f"the database refused the write: {_integrity_detail(exc)}"
    first = str(exc.orig).splitlines()[0] if exc.orig is not None else str(exc)
    return f"{type(exc.orig).__name__}: {first}"


def translate(exc: sa_exc.DBAPIError, label: str, row: int | None = None) -> DatabaseError:
    """The DataFlow error for a SQLAlchemy one, its message starting with ``label``."""
    kind = IntegrityError if isinstance(exc, sa_exc.IntegrityError) else DatabaseError
    return kind(f"{label}: {describe(exc)}", row=row)


@contextmanager
def wrapped(label: str) -> Iterator[None]:
    """Re-raise SQLAlchemy errors as DataFlow errors that name ``label``."""
    try:
        yield
    except sa_exc.DBAPIError as exc:
        raise translate(exc, label) from exc
