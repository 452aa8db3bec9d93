"""Python annotations a model field may use: their column types and value coercion."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from dataflow.dialects import dialect_named
from dataflow.dialects.functions import as_real

UTC = dt.UTC


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
    """NUMERIC on PostgreSQL, DECIMAL(38, 10) on MySQL, REAL on SQLite (15 significant digits)."""

    impl = sa.Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        return dialect_named(dialect.name).decimal_type(dialect)

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is not None:
            return dialect_named(dialect.name).decimal_bind(value)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, float):
            return decimal.Decimal(repr(value))
        return value


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


def _coerce_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise Refused(f"a str, got {_kind(value)}")


def _coerce_int(value: Any) -> int:
    if type(value) is int:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float | decimal.Decimal) and value == int(value):
        return int(value)
    raise Refused(f"an int, got {_kind(value)}")


def _coerce_float(value: Any) -> float:
    if type(value) is float:
        return value
    if isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool):
        return float(value)
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
        return value.astimezone(UTC)
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
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return decimal.Decimal(value)
    if isinstance(value, float):
        return decimal.Decimal(repr(value))
    if isinstance(value, str):
        try:
            return decimal.Decimal(value.strip())
        except decimal.InvalidOperation:
            raise Refused("a Decimal, got a str that is not a number") from None
    raise Refused(f"a Decimal, got {_kind(value)}")


def _json_checked(kind: type) -> Callable[[Any], Any]:
    def coerce(value: Any) -> Any:
        if not isinstance(value, kind):
            raise Refused(f"a {kind.__name__}, got {_kind(value)}")
        try:
            json.dumps(value)
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
