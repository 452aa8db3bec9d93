"""Functions DataFlow adds to every SQLite connection, for what SQLite lacks and servers have.

``REGEXP`` is RE2, which matches in time linear in the text whatever the pattern: Python's
backtracking ``re``, which SQLAlchemy would register, takes exponential time on patterns like
``^(a+)+$``. ``$regex`` goes through ``dataflow_regexp``, RE2 too, and is also bounded in time
(``RegexBudget``), as rows times text length can still be large. ``dataflow_checked`` refuses
arithmetic that leaves a column's range, where SQLite would store a float in an integer column
or an infinity.
"""

from __future__ import annotations

import decimal
import functools
import sqlite3
import threading
import time
from dataclasses import dataclass

import re2

#: Unicode lower case for ``$ilike``; SQLite's ``lower()`` only folds ASCII.
FOLD = "dataflow_lower"
#: ``$sum`` of a Decimal field: exact, where SUM would add doubles and drift.
DECIMAL_SUM = "dataflow_decimal_sum"
#: ``dataflow_out_of_range(column, integral)``: refuses a new value its column cannot hold.
OUT_OF_RANGE = "dataflow_out_of_range"
#: What sqlite3 reports for any exception a Python function raises.
RAISED = "user-defined function raised exception"
#: ``dataflow_regexp(dataflow_regex_start(pattern), value)``: ``$regex`` under a time budget.
REGEX = "dataflow_regexp"
REGEX_START = "dataflow_regex_start"
#: What sqlite3 reports for a statement its progress handler stopped.
INTERRUPTED = "interrupted"
#: Seconds a statement may spend matching a ``$regex`` on SQLite before it is stopped.
REGEX_BUDGET = 10.0
#: SQLite virtual-machine steps between two looks at the clock.
BUDGET_STEPS = 10_000
#: A budget lapses once no match has run for this long (its statement is over).
_IDLE = 0.05
#: RE2's memory for one compiled pattern (its default, 8 MiB, refuses large counted repeats).
_REGEX_MEMORY = 64 << 20


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a DataFlow function refused a value: sqlite3 keeps only ``RAISED``."""

    sqlstate: str
    reason: str


# sqlite3 runs a function in the thread that runs the statement, so the reason waits there
# for the error translation (database/driver_errors.py) to take it.
_refused = threading.local()


def take_refusal() -> Refusal | None:
    """The reason of the last refusal in this thread, once."""
    refusal: Refusal | None = getattr(_refused, "value", None)
    _refused.value = None
    return refusal


def _refuse(sqlstate: str, reason: str) -> ValueError:
    _refused.value = Refusal(sqlstate, reason)
    return ValueError(reason)


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


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re2._Regexp:
    options = re2.Options()
    options.max_mem = _REGEX_MEMORY
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise _refuse(
            "2201B",
            f"the $regex pattern is too large for SQLite's regular expression engine "
            f"({reason}); use smaller counted repeats",
        ) from None


def regexp(pattern: str, value: str | None) -> bool | None:
    """``value REGEXP pattern``: whether RE2 finds ``pattern`` in ``value`` (NULL stays NULL)."""
    if value is None:
        return None
    return _compiled(pattern).search(value) is not None


class RegexBudget:
    """The time a connection's running statement may spend matching a ``$regex``.

    SQLite evaluates ``start(pattern)``, a deterministic function of a constant, once as the
    statement begins: it arms the deadline. SQLite's progress handler calls ``check`` every
    ``BUDGET_STEPS`` steps of any statement; past the deadline, while matches are running, it
    stops the statement ("interrupted") and leaves the reason for the error translation. A
    deadline whose statement has ended (no match for a while) lapses.
    """

    __slots__ = ("deadline", "last")

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.last = 0.0

    def start(self, pattern: str) -> str:
        self.deadline = time.monotonic() + REGEX_BUDGET
        return pattern

    def match(self, pattern: str, value: str | None) -> bool | None:
        self.last = time.monotonic()
        return regexp(pattern, value)

    def check(self) -> int:
        if self.deadline is None:
            return 0
        now = time.monotonic()
        if now - self.last > _IDLE:  # no match for a while: its statement is over
            self.deadline = None
            return 0
        if now <= self.deadline:
            return 0
        self.deadline = None
        _refuse(
            "57014",  # PostgreSQL's query_canceled
            f"a $regex query ran past its {REGEX_BUDGET:g} s budget on SQLite and was stopped; "
            "narrow it with other conditions",
        )
        return 1


def out_of_range(column: str, integral: int) -> None:
    """Refuse a new value of ``column`` its type cannot hold (called only for such a value)."""
    raise _refuse(
        "22003",
        f"the new value of '{column}' is out of range for its type "
        f"({'a 64-bit integer' if integral else 'a finite double'})",
    )


def register(conn: sqlite3.Connection) -> None:
    conn.create_function(FOLD, 1, fold, deterministic=True)
    conn.create_aggregate(DECIMAL_SUM, 1, DecimalSum)  # type: ignore[arg-type]  # float, not int
    conn.create_function("regexp", 2, regexp, deterministic=True)
    budget = RegexBudget()
    conn.create_function(REGEX_START, 1, budget.start, deterministic=True)
    conn.create_function(REGEX, 2, budget.match, deterministic=True)
    conn.set_progress_handler(budget.check, BUDGET_STEPS)
    conn.create_function(OUT_OF_RANGE, 2, out_of_range, deterministic=True)
