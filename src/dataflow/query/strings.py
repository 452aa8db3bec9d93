"""String matching that answers alike on every backend: LIKE, case-folded LIKE and regex.

Only what differs per backend lives here. SQLite's LIKE ignores ASCII case, so its exact
match is GLOB; PostgreSQL columns use the "C" collation, whose ``lower()`` only folds ASCII,
so folding uses the database's default collation; MariaDB's columns are binary, so LIKE is
exact there and ``LOWER()`` folds.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from dataflow.dialects import Dialect
from dataflow.query.regex import Regex

#: A LIKE pattern split into literal text and wildcards.
ANY = "%"
ONE = "_"
Parts = tuple[tuple[str, str], ...]  # ("text", literal) | ("wild", ANY or ONE)


class PatternError(ValueError):
    """A LIKE pattern that cannot be read; the message says how to write it."""


def parse_like(pattern: str) -> Parts:
    """``%`` is any run of characters, ``_`` one character, ``\\`` makes the next one literal."""
    parts: list[tuple[str, str]] = []
    text: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            escaped = next(chars, None)
            if escaped is None:
                raise PatternError("ends with a lone backslash; write \\\\ for a backslash")
            text.append(escaped)
        elif char in (ANY, ONE):
            if text:
                parts.append(("text", "".join(text)))
                text = []
            parts.append(("wild", char))
        else:
            text.append(char)
    if text:
        parts.append(("text", "".join(text)))
    return tuple(parts)


def contains(text: str, start: bool, end: bool) -> Parts:
    """The pattern for ``text`` anywhere (neither flag), at the start, or at the end."""
    return (
        *((("wild", ANY),) if not start else ()),
        ("text", text),
        *((("wild", ANY),) if not end else ()),
    )


def _like_text(parts: Parts) -> str:
    out = []
    for kind, value in parts:
        if kind == "wild":
            out.append(value)
        else:
            out.append(value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_"))
    return "".join(out)


def _glob_text(parts: Parts) -> str:
    wild = {ANY: "*", ONE: "?"}
    out = []
    for kind, value in parts:
        if kind == "wild":
            out.append(wild[value])
        else:
            out.append("".join(f"[{c}]" if c in "*?[" else c for c in value))
    return "".join(out)


def like(dialect: Dialect, expr: sa.ColumnElement[Any], parts: Parts) -> sa.ColumnElement[bool]:
    """Case-sensitive LIKE."""
    if dialect.like_by_glob:
        return expr.op("GLOB", is_comparison=True)(_glob_text(parts))
    return expr.like(_like_text(parts), escape="\\")


def ilike(dialect: Dialect, expr: sa.ColumnElement[Any], parts: Parts) -> sa.ColumnElement[bool]:
    """LIKE with both sides lower-cased by the database."""
    pattern = sa.bindparam(None, _like_text(parts), type_=sa.Text())
    return dialect.fold(expr).like(dialect.fold(pattern), escape="\\")


def regex(dialect: Dialect, expr: sa.ColumnElement[Any], pattern: Regex) -> sa.ColumnElement[bool]:
    """A case-sensitive regular-expression search (SQLite's REGEXP is RE2)."""
    return dialect.regex_match(expr, pattern.render(dialect))
