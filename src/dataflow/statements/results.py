"""Driver rows -> record dicts in one pass, for the list hot path on SQLite.

SQLAlchemy builds a Row per result row and applies each column's result processor; the
records then become dicts. For a page of a hundred rows that is most of a short list's cost.
A builder made once per column set does both in one comprehension: it reads the driver's
tuples and calls the very processors SQLAlchemy would (SQLite reports no column type codes,
so the processors are exactly the ones SQLAlchemy itself picks there).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

RowBuilder = Callable[[Sequence[Any]], list[dict[str, Any]]]


def row_builder(columns: Sequence[sa.ColumnElement[Any]], dialect: Dialect) -> RowBuilder:
    """A function that turns the driver's rows for ``columns`` into dicts keyed by name."""
    namespace: dict[str, Any] = {}
    values, items = [], []
    for i, column in enumerate(columns):
        name = getattr(column, "key", None) or column.name
        process = column.type._cached_result_processor(dialect, None)
        values.append(f"v{i}")
        if process is None:
            items.append(f"{name!r}: v{i}")
        else:
            namespace[f"p{i}"] = process
            items.append(f"{name!r}: p{i}(v{i})")
    source = (
        f"def build(rows):\n"
        f"    return [{{{', '.join(items)}}} for ({', '.join(values)},) in rows]\n"
    )
    exec(compile(source, "<dataflow row builder>", "exec"), namespace)
    build: RowBuilder = namespace["build"]
    return build
