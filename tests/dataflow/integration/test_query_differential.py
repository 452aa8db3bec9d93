"""Differential test: random records and random filters; every backend returns the oracle's rows.

Hypothesis draws records, nested filters over every operator (relations included), a sort,
and a way to page; the List node must return exactly the rows the oracle
(tests/dataflow/oracle.py) picks, in its order, page by page, and BulkDelete must delete
exactly those rows. One table per backend is reused across examples.
``DATAFLOW_DIFFERENTIAL_EXAMPLES`` sets the number of examples per backend.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.dataflow import oracle
from tests.dataflow.conftest import run_node
from tests.dataflow.differential import (
    ORDERED,
    SETTINGS,
    STRING_OPS,
    VALUES,
    datasets,
    define_models,
    field_conditions,
    filters,
    sorts,
    store,
)


@pytest.fixture
def items(db):
    return define_models(db)


def _list_ids(params: dict) -> dict:
    out = run_node("DiffItemListNode", params)
    return {**out, "ids": [r["id"] for r in out["records"]]}


def _check_list(data: st.DataObject, where: dict, expected_rows: list[dict]) -> None:
    """List with a random sort and paging returns the oracle's rows, in the oracle's order."""
    sort, meaning = data.draw(sorts([*ORDERED, "flag", "owner_id"]), label="sort")
    expected = [r["id"] for r in oracle.ordered(expected_rows, meaning, ["id"])]
    paging = data.draw(st.sampled_from(["all", "offset", "keyset"]), label="paging")
    if paging == "all":
        out = _list_ids({"filter": where, "sort": sort, "count_total": True})
        assert out["ids"] == expected
        assert out["total"] == len(expected)
    elif paging == "offset":
        limit = data.draw(st.integers(0, 5), label="limit")
        offset = data.draw(st.integers(0, 5), label="offset")
        out = _list_ids({"filter": where, "sort": sort, "limit": limit, "offset": offset})
        assert out["ids"] == expected[offset : offset + limit]
    else:
        limit = data.draw(st.integers(1, 4), label="limit")
        pages: list[int] = []
        params: dict[str, Any] = {"filter": where, "sort": sort, "limit": limit}
        for _ in range(len(expected) + 1):
            out = _list_ids(params)
            pages.extend(out["ids"])
            if out["next_cursor"] is None:
                break
            params["after"] = out["next_cursor"]
        assert pages == expected


@SETTINGS
@given(data=st.data())
def test_every_backend_returns_the_oracles_rows(items, data):
    dataset = data.draw(datasets(), label="dataset")
    store(items, dataset)
    owners = {o["id"]: o for o in dataset["owners"]}
    relations = {"owner": ("owner_id", owners)}
    regex_map: dict[str, str] = {}
    wheres = filters(dataset, regex_map)
    rows = dataset["items"]
    # Several filters per dataset: storing rows costs more than querying them.
    for _ in range(3):
        empty = data.draw(st.integers(0, 9), label="empty filter") == 0
        where = {} if empty else data.draw(wheres, label="filter")
        picked = [r for r in rows if oracle.matches(r, where, relations, regex_map)]
        _check_list(data, where, picked)

    deleted = run_node("DiffItemBulkDeleteNode", {"filter": where, "confirm_all": True})
    assert deleted["deleted"] == len(picked)
    left = _list_ids({})["ids"]
    assert left == [r["id"] for r in rows if r not in picked]


# Mostly letters with two cases, and the characters LIKE, GLOB and regexes treat specially.
CASED = st.text("aAbBéÉ\u03c3Σ _%\\*?[", max_size=5)


@SETTINGS
@given(data=st.data())
def test_string_operators_match_exactly_and_fold_case_alike(items, data):
    names = data.draw(st.lists(st.none() | CASED, min_size=1, max_size=10), label="names")
    blank = dict.fromkeys(VALUES) | {"code": "", "owner_id": None}
    rows = [{**blank, "id": i, "name": name} for i, name in enumerate(names, 1)]
    store(items, {"owners": [], "items": rows})
    seen = sorted({n for n in names if n is not None})
    ops = [*STRING_OPS, "$eq", "$in", "$gt", "$not"]
    for _ in range(6):
        regex_map: dict[str, str] = {}
        condition = data.draw(field_conditions("name", CASED, seen, regex_map, ops), label="name")
        where = {"name": condition}
        expected = [r["id"] for r in rows if oracle.matches(r, where, {}, regex_map)]
        assert _list_ids({"filter": where})["ids"] == expected
