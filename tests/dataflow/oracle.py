"""A plain-Python reading of the filter language: the oracle the backends are checked against.

It follows DESIGN §4 directly and shares no code with ``dataflow.query``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

Record = Mapping[str, Any]
#: For a relation name: (the field holding the key, the related records by id).
Relations = Mapping[str, tuple[str, Mapping[Any, Record]]]


def fold(text: str) -> str:
    return "".join(c.lower() for c in text)


def like_regex(pattern: str) -> re.Pattern[str]:
    out = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            out.append(re.escape(next(chars)))
        elif char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        else:
            out.append(re.escape(char))
    return re.compile("".join(out), re.DOTALL)


def coerce(like: Any, value: Any) -> Any:
    """A filter value as the type of the stored value ``like``."""
    if isinstance(like, dt.datetime) and isinstance(value, str):
        parsed = dt.datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    if isinstance(like, Decimal) and not isinstance(value, Decimal):
        return Decimal(str(value))
    if isinstance(like, float):
        return float(value)
    return value


def _op(value: Any, op: str, arg: Any, regexes: Mapping[str, str]) -> bool:
    if op == "$not":
        return not _field(value, arg, regexes)
    if op in ("$exists", "$null"):
        return (value is not None) == (arg == (op == "$exists"))
    if op == "$eq":
        return value is None if arg is None else value is not None and value == coerce(value, arg)
    if op == "$ne":
        return not _op(value, "$eq", arg, regexes)
    if op == "$in":
        return any(_op(value, "$eq", a, regexes) for a in arg)
    if op == "$nin":
        return not _op(value, "$in", arg, regexes)
    if value is None:
        return False
    tests: dict[str, Callable[[], bool]] = {
        "$gt": lambda: value > coerce(value, arg),
        "$gte": lambda: value >= coerce(value, arg),
        "$lt": lambda: value < coerce(value, arg),
        "$lte": lambda: value <= coerce(value, arg),
        "$between": lambda: coerce(value, arg[0]) <= value <= coerce(value, arg[1]),
        "$like": lambda: like_regex(arg).fullmatch(value) is not None,
        "$ilike": lambda: like_regex(fold(arg)).fullmatch(fold(value)) is not None,
        "$regex": lambda: re.search(regexes[arg], value, re.DOTALL) is not None,
        "$contains": lambda: arg in value,
        "$startswith": lambda: value.startswith(arg),
        "$endswith": lambda: value.endswith(arg),
    }
    return tests[op]()


def _field(value: Any, condition: Any, regexes: Mapping[str, str]) -> bool:
    if isinstance(condition, Mapping):
        return all(_op(value, op, arg, regexes) for op, arg in condition.items())
    return _op(value, "$eq", condition, regexes)


def matches(
    record: Record,
    where: Mapping[str, Any],
    relations: Relations,
    regexes: Mapping[str, str],
) -> bool:
    """Whether ``record`` matches the filter ``where``.

    ``regexes`` maps each ``$regex`` pattern to the Python regex that means the same.
    """
    for key, value in where.items():
        if key == "$and":
            ok = all(matches(record, f, relations, regexes) for f in value)
        elif key == "$or":
            ok = any(matches(record, f, relations, regexes) for f in value)
        elif key == "$nor":
            ok = not any(matches(record, f, relations, regexes) for f in value)
        elif key == "$not":
            ok = not matches(record, value, relations, regexes)
        elif key in relations:
            field, targets = relations[key]
            target = targets.get(record[field])
            ok = target is not None and matches(target, value, {}, regexes)
        else:
            ok = _field(record[key], value, regexes)
        if not ok:
            return False
    return True


def ordered(rows: Iterable[Record], keys: list[tuple[str, bool]], tiebreak: list[str]) -> list:
    """``rows`` sorted by (name, descending) keys then ``tiebreak``; NULL before any value."""
    out = list(rows)
    for name, descending in [*reversed([(t, False) for t in tiebreak]), *reversed(keys)]:
        out.sort(key=lambda r, n=name: (0,) if r[n] is None else (1, r[n]), reverse=descending)
    return out


def aggregate(
    rows: Iterable[Record], group_by: list[str], measures: Mapping[str, tuple[str, str | None]]
) -> list[dict[str, Any]]:
    """Group ``rows`` and compute each alias's (operator, field); field None counts rows."""
    groups: dict[tuple, list[Record]] = {}
    if group_by:
        for row in rows:
            groups.setdefault(tuple(row[g] for g in group_by), []).append(row)
    else:
        groups[()] = list(rows)
    out = []
    for key, members in groups.items():
        result: dict[str, Any] = dict(zip(group_by, key, strict=True))
        for alias, (op, field) in measures.items():
            values = members if field is None else [m[field] for m in members]
            values = [v for v in values if v is not None]
            if op == "$count":
                result[alias] = len(values)
            elif op == "$count_distinct":
                result[alias] = len(set(values))
            elif not values:
                result[alias] = None
            elif op == "$sum":
                result[alias] = sum(values)
            elif op == "$avg":
                result[alias] = float(sum(values)) / len(values)
            else:
                result[alias] = (min if op == "$min" else max)(values)
        out.append(result)
    return out
