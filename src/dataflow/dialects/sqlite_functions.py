"""Functions DataFlow adds to every SQLite connection, for what SQLite lacks and servers have.

(``REGEXP``, for ``$regex``, is Python's ``re``, registered by SQLAlchemy's pysqlite dialect.)
"""

from __future__ import annotations

import decimal
import sqlite3

#: Unicode lower case for ``$ilike``; SQLite's ``lower()`` only folds ASCII.
FOLD = "dataflow_lower"
#: ``$sum`` of a Decimal field: exact, where SUM would add doubles and drift.
DECIMAL_SUM = "dataflow_decimal_sum"


def fold(value: str | None) -> str | None:
    """Lower-case one character at a time, as the servers' ``lower()`` does."""
    if value is None or value.isascii():
        return value.lower() if value is not None else None
    # str.lower() lowers a final sigma to ς and İ to two characters; the servers do neither.
    return "".join("i" if c == "\u0130" else c.lower() for c in value)


class DecimalSum:
    """SUM over the Decimals a column stores as doubles (each read back as its shortest repr)."""

    def __init__(self) -> None:
        self.total: decimal.Decimal | None = None

    def step(self, value: float | None) -> None:
        if value is not None:
            number = decimal.Decimal(repr(float(value)))
            self.total = number if self.total is None else self.total + number

    def finalize(self) -> float | None:
        return None if self.total is None else float(self.total)


def register(conn: sqlite3.Connection) -> None:
    conn.create_function(FOLD, 1, fold, deterministic=True)
    conn.create_aggregate(DECIMAL_SUM, 1, DecimalSum)  # type: ignore[arg-type]  # float, not int
