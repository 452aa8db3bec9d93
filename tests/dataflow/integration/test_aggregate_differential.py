"""Differential test of AggregateNode: random groups, aggregates, having, sort and limit.

Every backend must return the oracle's groups (tests/dataflow/oracle.py), with the same
values and types, in the same order. Sums are over ints and two-place Decimals, and averages
over ints, so the exact answer is defined (a float sum depends on the order of addition).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.dataflow import oracle
from tests.dataflow.conftest import run_node
from tests.dataflow.differential import (
    SETTINGS,
    VALUES,
    datasets,
    define_models,
    field_conditions,
    filters,
    sorts,
    store,
)

AGGREGATE_VALUES = {
    **VALUES,
    "n": st.integers(-1000, 1000),
    "price": st.decimals(-(10**6), 10**6, places=2, allow_nan=False, allow_infinity=False),
}
GROUPABLE = ["name", "code", "flag", "day", "owner_id", "n"]
MEASURES = [
    ("$count", None),
    ("$count", "name"),
    ("$count_distinct", "code"),
    ("$sum", "n"),
    ("$sum", "price"),
    ("$avg", "n"),
    ("$min", "name"),
    ("$max", "at"),
    ("$min", "x"),
    ("$max", "price"),
    ("$min", "day"),
]
#: A SQLite Decimal is a double, so a sum of them can land a hair off a threshold.
NOT_IN_HAVING = {"flag", "sum of price"}
HAVING_OPS = ["$gt", "$gte", "$lt", "$lte", "$eq", "$ne", "$in", "$nin", "$between", "none"]


@pytest.fixture
def items(db):
    return define_models(db)


def _alias(op: str, field: str | None) -> str:
    return f"{op[1:]} of {field or 'rows'}"


@settings(SETTINGS, max_examples=max(1, SETTINGS.max_examples // 2))
@given(data=st.data())
def test_aggregates_match_the_oracle_on_every_backend(items, data):
    dataset = data.draw(datasets(AGGREGATE_VALUES), label="dataset")
    store(items, dataset)
    relations = {"owner": ("owner_id", {o["id"]: o for o in dataset["owners"]})}
    regex_map: dict[str, str] = {}
    wheres = filters(dataset, regex_map)
    for _ in range(2):
        group_by = data.draw(st.lists(st.sampled_from(GROUPABLE), max_size=2, unique=True))
        chosen = data.draw(st.lists(st.sampled_from(MEASURES), min_size=1, max_size=4, unique=True))
        measures = {_alias(op, field): (op, field) for op, field in chosen}
        where = data.draw(st.just({}) | wheres, label="filter")
        picked = [r for r in dataset["items"] if oracle.matches(r, where, relations, regex_map)]
        groups = oracle.aggregate(picked, group_by, measures)

        params: dict[str, Any] = {
            "filter": where,
            "group_by": group_by,
            "aggregate": {alias: {op: field or "*"} for alias, (op, field) in measures.items()},
        }
        having: dict[str, Any] = {}
        candidates = [n for n in [*group_by, *measures] if n not in NOT_IN_HAVING]
        if candidates and data.draw(st.booleans(), label="having?"):
            name = data.draw(st.sampled_from(candidates), label="having on")
            seen = sorted({g[name] for g in groups if g[name] is not None}, key=repr)
            if seen:
                values = st.sampled_from(seen)
                having = {name: data.draw(field_conditions(name, values, seen, {}, HAVING_OPS))}
                params["having"] = having
        sort, meaning = data.draw(sorts([*group_by, *measures]), label="sort")
        params["sort"] = sort
        limit = data.draw(st.none() | st.integers(0, 3), label="limit")
        if limit is not None:
            params["limit"] = limit

        kept = [g for g in groups if oracle.matches(g, having, {}, {})]
        expected = oracle.ordered(kept, meaning, group_by)[:limit]
        out = run_node("DiffItemAggregateNode", params)
        assert out["records"] == expected
        assert out["count"] == len(expected)
