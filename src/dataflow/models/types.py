"""Python annotations a model field may use: their column types and value coercion."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from dataflow.dialects import Dialect as DialectRules
from dataflow.dialects import dialect_named
from dataflow.dialects.functions import as_real

UTC = dt.UTC
#: The integers every backend stores (a BIGINT).
INT64 = range(-(2**63), 2**63)
#: How deeply a filter may nest, counting each dict and list (the gateway's limit too).
MAX_DEPTH = 64
#: How deeply a dict or list field's value may nest: MariaDB's JSON holds 31 levels of dicts
#: and lists (a JSON_DEPTH of 32), so every backend stores the same values.
MAX_JSON_DEPTH = 31


class Refused(ValueError):
    """A value cannot be coerced to a field's type; the message completes 'expects ...'."""


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores UTC without a zone on every backend; returns aware UTC datetimes."""

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        return dialect_named(dialect.name).datetime_type(dialect)

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        # One call per value instead of the impl's processor plus process_result_value:
        # lists of many rows spend most of their time here.
        read = dialect_named(dialect.name).datetime_reader()
        return read or (lambda value: self.process_result_value(value, dialect))


class ExactDecimal(TypeDecorator[decimal.Decimal]):
    """NUMERIC on PostgreSQL, DECIMAL(38, 10) on MySQL, REAL on SQLite (15 significant digits).

    Values come back in one form on every backend and path: a Decimal without trailing
    fractional zeros (``Decimal('1')``, ``Decimal('1.5')``), whatever scale the column keeps.
    """

    impl = sa.Numeric
    cache_ok = True
    #: Digits in all and after the point that every backend keeps exactly (MySQL's column).
    PRECISION = 38
    SCALE = 10

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        return dialect_named(dialect.name).decimal_type(dialect)

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is not None:
            return dialect_named(dialect.name).decimal_bind(value)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, float):
            value = decimal.Decimal(repr(value))
        elif not isinstance(value, decimal.Decimal):  # SQLite's RETURNING: an int for 1.0
            value = decimal.Decimal(value)
        return plain_decimal(value)


def plain_decimal(value: decimal.Decimal) -> decimal.Decimal:
    """``value`` without trailing fractional zeros or an exponent: 1.50 -> 1.5, 1E+2 -> 100."""
    if not value.is_finite():
        return value
    with decimal.localcontext(_WIDE):
        if value == value.to_integral_value():
            return value.quantize(_ONE)
        return value.normalize()


_WIDE = decimal.Context(prec=100, Emax=1000, Emin=-1000)
_ONE = decimal.Decimal(1)


def decimal_checker(dialect: DialectRules) -> Callable[[decimal.Decimal], decimal.Decimal]:
    """Refuse a Decimal that ``dialect``'s column would round, rather than store it rounded."""
    scale = ExactDecimal.SCALE
    whole = ExactDecimal.PRECISION - scale
    significant = dialect.decimal_significant or ExactDecimal.PRECISION

    def check(value: decimal.Decimal) -> decimal.Decimal:
        value = plain_decimal(value)
        _, digits, exponent = value.as_tuple()
        places = max(0, -int(exponent))  # finite: the coercion refused the rest
        before = max(0, len(digits) + int(exponent)) if value else 0
        if places > scale:
            raise Refused(
                f"a Decimal with at most {scale} digits after the point, got {places} "
                f"({value}); round it first, e.g. value.quantize(Decimal('0.01'))"
            )
        if before > whole:
            raise Refused(f"a Decimal with at most {whole} digits before the point, got {before}")
        used = len(value.normalize(_WIDE).as_tuple().digits)
        if used > significant:
            raise Refused(
                f"a Decimal of at most {significant} significant digits on {dialect.name}, which "
                f"stores Decimals as doubles; got {used} ({value})"
            )
        return value

    return check


class Real(TypeDecorator[float]):
    """A double everywhere. SQLite's RETURNING hands back integral REALs as ints; a CAST in
    the selected columns fixes that in SQL, with no Python call per value."""

    impl = sa.Double
    cache_ok = True

    def column_expression(self, column: Any) -> Any:
        return as_real(column)


def json_type() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


class ExactString(TypeDecorator[str]):
    """Text compared and sorted by code point, trailing spaces significant, on every backend.

    PostgreSQL columns use the "C" collation (the database's locale would sort linguistically);
    MariaDB and MySQL need a length to index a column and a binary NO PAD collation, since
    PAD SPACE collations ignore trailing spaces in ``=``, ``GROUP BY`` and unique keys.
    """

    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        return dialect_named(dialect.name).text_type(dialect)

    def coerce_compared_value(self, op: Any, value: Any) -> sa.types.TypeEngine[Any]:
        # A value compared with the column takes the column's collation from it; typed with
        # the collation itself, PostgreSQL would see `x BETWEEN $1 COLLATE "C" AND ...`.
        return sa.Text()


def integer_type() -> sa.types.TypeEngine[Any]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _kind(value: Any) -> str:
    return type(value).__name__


def encodable(value: str) -> bool:
    """Whether ``value`` is Unicode text (no lone surrogate), as every backend needs."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_SURROGATE = "a str without lone surrogates (\\ud800-\\udfff), which are no Unicode text"


def _coerce_str(value: Any) -> str:
    if isinstance(value, str):
        if not encodable(value):
            raise Refused(f"{_SURROGATE}; this one holds one")
        return value
    raise Refused(f"a str, got {_kind(value)}")


def _int64(value: int) -> int:
    if value not in INT64:
        raise Refused(f"an int that fits in 64 bits (-2**63 to 2**63 - 1), got {value}")
    return value


def _coerce_int(value: Any) -> int:
    if type(value) is int:
        return _int64(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return _int64(int(value))
    if isinstance(value, float | decimal.Decimal):
        if not _finite(value):
            raise Refused(f"an int, got {value!r}; numbers must be finite")
        if value == int(value):
            return _int64(int(value))
    raise Refused(f"an int, got {_kind(value)}")


def _finite(value: float | decimal.Decimal) -> bool:
    return value.is_finite() if isinstance(value, decimal.Decimal) else math.isfinite(value)


def _coerce_float(value: Any) -> float:
    if isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool):
        try:
            number = value if type(value) is float else float(value)
        except OverflowError:  # an int beyond a double's range
            number = math.inf
        if not math.isfinite(number):
            raise Refused(f"a finite float, got {value!r}; NaN and infinities are refused")
        return number
    raise Refused(f"a float, got {_kind(value)}")


def _coerce_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise Refused(f"a bool (True or False), got {_kind(value)}")


def parse_datetime(value: Any) -> dt.datetime:
    """A datetime (naive means UTC) or an ISO-8601 string, as an aware UTC datetime."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise Refused("a datetime or an ISO-8601 string, got a str that is not one") from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise Refused(
                f"a datetime that stays within the years 1 to 9999 in UTC, got {value.isoformat()}"
            ) from None
    if isinstance(value, dt.date):
        raise Refused("a datetime, got a date; use datetime.combine(d, time()) for midnight")
    raise Refused(f"a datetime or an ISO-8601 string, got {_kind(value)}")


def _coerce_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        raise Refused("a date, got a datetime; use .date()")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            raise Refused("a date or an ISO-8601 date string, got a str that is not one") from None
    raise Refused(f"a date, got {_kind(value)}")


def _coerce_decimal(value: Any) -> decimal.Decimal:
    if isinstance(value, decimal.Decimal):
        number = value
    elif isinstance(value, int) and not isinstance(value, bool):
        number = decimal.Decimal(value)
    elif isinstance(value, float):
        number = decimal.Decimal(repr(value))
    elif isinstance(value, str):
        try:
            number = decimal.Decimal(value.strip())
        except decimal.InvalidOperation:
            raise Refused("a Decimal, got a str that is not a number") from None
    else:
        raise Refused(f"a Decimal, got {_kind(value)}")
    if not number.is_finite():
        raise Refused(f"a finite Decimal, got {value!r}; NaN and infinities are refused")
    return number


def check_nesting(value: Any, limit: int = MAX_DEPTH) -> int | None:
    """The depth past ``limit`` that ``value``'s dicts and lists reach, else None.

    Walks without recursion, so a value nested 100,000 deep is measured, not a RecursionError.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            if depth > limit:
                return depth
            inner = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in inner)
    return None


def _json_problem(value: Any) -> str | None:
    """What no backend stores the same inside a JSON value, if anything; iterative."""
    if check_nesting(value, MAX_JSON_DEPTH) is not None:
        return f"values nested at most {MAX_JSON_DEPTH} levels deep (dicts and lists); flatten it"
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not encodable(item):
                return f"JSON text without lone surrogates (\\ud800-\\udfff); {item!r} holds one"
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if item not in INT64:
                return f"JSON integers that fit in 64 bits, got {item}"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"finite JSON numbers, got {item!r}; NaN and infinities are no JSON"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return None


def _json_checked(kind: type) -> Callable[[Any], Any]:
    def coerce(value: Any) -> Any:
        if not isinstance(value, kind):
            raise Refused(f"a {kind.__name__}, got {_kind(value)}")
        problem = _json_problem(value)
        if problem is not None:
            raise Refused(f"a {kind.__name__} holding {problem}")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise Refused(f"a JSON-serialisable {kind.__name__} ({exc})") from None
        return value

    return coerce


@dataclass(frozen=True, slots=True)
class FieldType:
    """How one kind of Python value is checked and stored."""

    name: str
    python: type
    coerce: Callable[[Any], Any]
    column: Callable[[], sa.types.TypeEngine[Any]]

    @property
    def is_json(self) -> bool:
        return self.name in ("dict", "list")


FIELD_TYPES: dict[type, FieldType] = {
    str: FieldType("str", str, _coerce_str, ExactString),
    int: FieldType("int", int, _coerce_int, integer_type),
    float: FieldType("float", float, _coerce_float, Real),
    bool: FieldType("bool", bool, _coerce_bool, sa.Boolean),
    dt.datetime: FieldType("datetime", dt.datetime, parse_datetime, UTCDateTime),
    dt.date: FieldType("date", dt.date, _coerce_date, sa.Date),
    decimal.Decimal: FieldType("Decimal", decimal.Decimal, _coerce_decimal, ExactDecimal),
    dict: FieldType("dict", dict, _json_checked(dict), json_type),
    list: FieldType("list", list, _json_checked(list), json_type),
}


def json_plain(value: Any) -> Any:
    """A value as JSON keeps it: dates and datetimes as ISO text, Decimals as text."""
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


def utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)
