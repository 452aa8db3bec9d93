"""Random data and filters for the differential tests, and the models they run against.

Values include NULLs, Unicode (outside the BMP too), trailing spaces, and edge numbers; rows
repeat values from a small pool per column so that filters hit and sorts tie.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("DATAFLOW_DIFFERENTIAL_EXAMPLES", "200"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Letters with one-to-one lower case on every backend, the LIKE/GLOB/regex specials,
# whitespace (trailing spaces count), and characters outside the BMP.
ALPHABET = "aAbBzZ09 _%\\.*?[]^$-\n\téÉßωΩΣ\u03c3ςжЖ中😀"
TEXT = st.text(ALPHABET, max_size=6)
INTS = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([2**63 - 1, -(2**63), 2**53 + 1, -(2**31)]),
    st.integers(-(2**63), 2**63 - 1),
)
FLOATS = st.one_of(
    st.sampled_from([0.0, -0.0, 0.5, -1.5, 1e300, -1e-300, 2.0**53]),
    st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=False),
)
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "name": TEXT,
    "code": TEXT,
    "n": INTS,
    "x": FLOATS,
    "price": st.decimals(-(10**8), 10**8, places=2, allow_nan=False, allow_infinity=False),
    "at": st.datetimes(dt.datetime(1970, 1, 1), dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)),
    "day": st.dates(dt.date(1900, 1, 1), dt.date(2100, 1, 1)),
    "flag": st.booleans(),
}
NULLABLE = {"name", "n", "x", "price", "at", "day", "flag"}
ORDERED = ["name", "code", "n", "x", "price", "at", "day"]
OWNER_VALUES = {"label": TEXT, "rank": st.integers(-3, 3)}
TEXT_FIELDS = {"name", "code", "label"}
STRING_OPS = ["$like", "$ilike", "$regex", "$contains", "$startswith", "$endswith"]


def define_models(db: Any) -> Any:
    """``DiffItem`` (the rows filtered) and ``DiffOwner`` (reached through ``owner``)."""

    @db.model
    class DiffOwner:
        label: str | None = None
        rank: int | None = None

    @db.model
    class DiffItem:
        owner_id: int | None = None
        name: str | None = None
        code: str = ""
        n: int | None = None
        x: float | None = None
        price: Decimal | None = None
        at: dt.datetime | None = None
        day: dt.date | None = None
        flag: bool | None = None
        __relations__ = {"owner": "DiffOwner"}

    db.create_tables()
    return db


# -- data -----------------------------------------------------------------------------------


@st.composite
def _columns(draw: st.DrawFn, values: dict, nullable: set[str], size: int) -> list[dict]:
    """``size`` rows whose values repeat (a small pool per column), so filters hit and sorts tie."""
    rows: list[dict[str, Any]] = [{} for _ in range(size)]
    for name, strategy in values.items():
        pool = draw(st.lists(strategy, min_size=1, max_size=3))
        choice = st.sampled_from(pool) | strategy
        if name in nullable:
            choice = st.none() | choice
        for row in rows:
            row[name] = draw(choice)
    for i, row in enumerate(rows, 1):
        row["id"] = i
    return rows


@st.composite
def datasets(draw: st.DrawFn, values: dict | None = None) -> dict[str, list[dict[str, Any]]]:
    owners = draw(_columns(OWNER_VALUES, set(OWNER_VALUES), draw(st.integers(0, 4))))
    items = draw(_columns(values or VALUES, NULLABLE, draw(st.integers(1, 12))))
    keys = st.none() | st.integers(1, len(owners)) if owners else st.none()
    for item in items:
        item["owner_id"] = draw(keys)
    return {"owners": owners, "items": items}


def store(db, data: dict[str, list[dict[str, Any]]]) -> None:
    owners = db.statements("DiffOwner").table
    items = db.statements("DiffItem").table
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    with db.database.begin() as conn:
        conn.execute(sa.delete(items))
        conn.execute(sa.delete(owners))
        for table, rows in ((owners, data["owners"]), (items, data["items"])):
            if rows:
                stamped = [{**r, "created_at": now, "updated_at": now} for r in rows]
                conn.execute(sa.insert(table), stamped)


# -- filters --------------------------------------------------------------------------------

#: A regex piece: (the pattern text, the Python regex the oracle runs).
REGEX_PIECES = st.one_of(
    st.sampled_from(
        [
            (".", "."),
            ("^", "^"),
            ("$", r"\Z"),
            (r"\d", "[0-9]"),
            (r"\w", "[0-9A-Za-z_]"),
            (r"\s", "[ \t\n\r\f\v]"),
            (r"\S", "[^ \t\n\r\f\v]"),
            ("[a-zé]", "[a-zé]"),
            ("[^A-Z ]", "[^A-Z ]"),
            (r"[\]\-\\]", r"[\]\-\\]"),
        ]
    ),
    st.text(ALPHABET, min_size=1, max_size=2).map(
        lambda t: ("".join("\\" + c if c in "\\^$.|?*+()[]{}" else c for c in t), re.escape(t))
    ),
)


@st.composite
def regexes(draw: st.DrawFn) -> tuple[str, str]:
    pieces = draw(st.lists(REGEX_PIECES, max_size=4))
    pattern, python = "".join(p for p, _ in pieces), "".join(q for _, q in pieces)
    shape = draw(st.sampled_from(["plain", "star", "group", "alternation", "count"]))
    if shape == "star" and pieces and pieces[-1][0] not in ("^", "$"):
        return pattern + "*", python + "*"
    if shape == "group":
        return f"({pattern})+", f"(?:{python})+"
    if shape == "alternation":
        other, other_py = draw(REGEX_PIECES)
        return f"{pattern}|{other}", f"{python}|{other_py}"
    if shape == "count":
        return f"(?:{pattern}){{1,2}}", f"(?:{python}){{1,2}}"
    return pattern, python


def _like_pattern(draw: st.DrawFn, seen: list[str]) -> str:
    source = draw(st.sampled_from(seen)) if seen and draw(st.booleans()) else draw(TEXT)
    out = []
    for char in source:
        roll = draw(st.integers(0, 9))
        if roll == 0:
            out.append("%")
        elif roll == 1:
            out.append("_")
        elif char in "%_\\":
            out.append("\\" + char)
        else:
            # Sometimes the other case: a near miss for $like, a hit for $ilike.
            out.append(char.swapcase() if roll == 2 else char)
    if draw(st.booleans()):
        out.insert(draw(st.integers(0, len(out))), "%")
    return "".join(out)


@st.composite
def field_conditions(
    draw: st.DrawFn,
    field: str,
    values: st.SearchStrategy,
    seen: list,
    regex_map: dict,
    ops: list[str] | None = None,
) -> Any:
    value = st.sampled_from(seen) | values if seen else values
    ordered = field != "flag"
    if ops is None:
        ops = ["$eq", "$ne", "$in", "$nin", "$exists", "$null", "$not", "plain", "none", "multi"]
        if ordered:
            ops += ["$gt", "$gte", "$lt", "$lte", "$between"]
        if field in TEXT_FIELDS:
            ops += STRING_OPS * 4
    op = draw(st.sampled_from(ops))
    if op == "plain":
        return draw(value)
    if op == "none":
        return None
    if op == "$not":
        inner = draw(field_conditions(field, values, seen, regex_map, ops))
        return {"$not": inner}
    if op == "multi":
        a, b = draw(value), draw(value)
        return {"$gte": min(a, b), "$lt": max(a, b)} if ordered else {"$ne": a, "$in": [a, b]}
    if op in ("$eq", "$ne"):
        return {op: draw(st.none() | value)}
    if op in ("$in", "$nin"):
        return {op: draw(st.lists(st.none() | value, max_size=3))}
    if op in ("$exists", "$null"):
        return {op: draw(st.booleans())}
    if op == "$between":
        return {
            op: sorted([draw(value), draw(value)]) if draw(st.booleans()) else [draw(value)] * 2
        }
    if op in ("$like", "$ilike"):
        return {op: _like_pattern(draw, seen)}
    if op == "$regex":
        pattern, python = draw(regexes())
        regex_map[pattern] = python
        return {op: pattern}
    if op in ("$contains", "$startswith", "$endswith"):
        if seen and draw(st.booleans()):
            text = draw(st.sampled_from(seen))
            start = draw(st.integers(0, len(text)))
            part = text[start : draw(st.integers(start, len(text)))]
            return {op: part.swapcase() if draw(st.integers(0, 3)) == 0 else part}
        return {op: draw(TEXT)}
    return {op: draw(value)}


def filters(data: dict, regex_map: dict) -> st.SearchStrategy[dict]:
    """Nested filters over the dataset's items and, through ``owner``, its owners."""

    def seen(rows: list[dict], field: str) -> list:
        return sorted({r[field] for r in rows if r[field] is not None}, key=repr)

    def extend(children: st.SearchStrategy[dict]) -> st.SearchStrategy[dict]:
        lists = st.lists(children, max_size=3)
        return st.one_of(
            lists.map(lambda fs: {"$and": fs}),
            lists.map(lambda fs: {"$or": fs}),
            lists.map(lambda fs: {"$nor": fs}),
            children.map(lambda f: {"$not": f}),
            st.tuples(children, children).map(lambda p: _merge(*p)),
        )

    def tree(rows: list[dict], values: dict, relation: bool) -> st.SearchStrategy[dict]:
        leaves = [
            st.fixed_dictionaries({f: field_conditions(f, values[f], seen(rows, f), regex_map)})
            for f in sorted(values)
            for _ in range(3 if f in TEXT_FIELDS else 1)  # text has the most operators
        ]
        if relation:
            owner = tree(data["owners"], OWNER_VALUES, False)
            leaves.append(st.fixed_dictionaries({"owner": owner}))
        return st.recursive(st.one_of(leaves), extend, max_leaves=6)

    return tree(data["items"], VALUES, True)


def _merge(a: dict, b: dict) -> dict:
    merged = dict(a)
    for key, value in b.items():
        merged.setdefault(key, value)
    return merged


SORT_FORMS = ["dict", "field", "text"]


@st.composite
def sorts(draw: st.DrawFn, names: list[str]) -> tuple[list[Any], list[tuple[str, bool]]]:
    """A sort in one of its three spellings, and what it means: (name, descending) pairs."""
    keys = draw(st.lists(st.sampled_from(names), max_size=3, unique=True))
    spec, meaning = [], []
    for key in keys:
        descending = draw(st.booleans())
        form = draw(st.sampled_from(SORT_FORMS))
        if form == "dict":
            spec.append({key: -1 if descending else 1})
        elif form == "field":
            spec.append({"field": key, "direction": "desc" if descending else "asc"})
        else:
            spec.append(("-" if descending else "") + key)
        meaning.append((key, descending))
    return spec, meaning


# -- the test -------------------------------------------------------------------------------
