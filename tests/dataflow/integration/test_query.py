"""The filter language, sorting and paging through List, Count and BulkUpdate, on every backend."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from dataflow import InvalidFilterError, ValidationError
from kailash import NodeExecutionError, WorkflowBuilder
from tests.dataflow.conftest import count_rows, run_node


@pytest.fixture
def people(db):
    @db.model
    class Person:
        name: str
        nick: str | None = None
        age: int | None = None
        balance: Decimal = Decimal("0")
        joined: dt.datetime | None = None

    rows = [
        {"name": "Ann", "nick": "annie", "age": 30, "balance": Decimal("10.50")},
        {"name": "ann", "nick": None, "age": None, "balance": Decimal("-2")},
        {"name": "Bob ", "nick": "B%b", "age": 41, "joined": dt.datetime(2024, 5, 1, 12)},
        {"name": "Bob", "nick": "b_b", "age": 17, "joined": dt.datetime(2025, 2, 1)},
        {"name": "Çelik", "nick": "ÇELİK", "age": 30, "balance": Decimal("7")},
    ]
    for row in rows:
        run_node("PersonCreateNode", row)
    return db


def names(where: dict, **params) -> list[str]:
    out = run_node("PersonListNode", {"filter": where, **params})
    return [r["name"] for r in out["records"]]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"nick": None}, ["ann"]),
        ({"nick": {"$not": None}}, ["Ann", "Bob ", "Bob", "Çelik"]),
        ({"age": {"$ne": 30}}, ["ann", "Bob ", "Bob"]),  # NULL is "not 30"
        ({"age": {"$nin": [30, 41]}}, ["ann", "Bob"]),
        ({"age": {"$in": []}}, []),
        ({"age": {"$nin": []}}, ["Ann", "ann", "Bob ", "Bob", "Çelik"]),
        ({"age": {"$not": {"$gt": 20}}}, ["ann", "Bob"]),  # plain negation keeps NULL
        ({"age": {"$gte": 17, "$lt": 40}}, ["Ann", "Bob", "Çelik"]),
        ({"age": {"$between": [17, 30]}}, ["Ann", "Bob", "Çelik"]),
        ({"name": "Bob"}, ["Bob"]),  # trailing spaces count
        ({"name": {"$like": "a%"}}, ["ann"]),  # case-sensitive
        ({"name": {"$ilike": "a%"}}, ["Ann", "ann"]),
        ({"name": {"$ilike": "çel%"}}, ["Çelik"]),  # beyond ASCII
        ({"nick": {"$like": "B\\%b"}}, ["Bob "]),  # an escaped wildcard
        ({"nick": {"$contains": "_"}}, ["Bob"]),  # wildcards are literal here
        ({"name": {"$startswith": "B", "$endswith": " "}}, ["Bob "]),
        ({"name": {"$regex": "^[A-Z][a-z]+$"}}, ["Ann", "Bob"]),
        ({"nick": {"$regex": "b.b"}}, ["Bob"]),
        ({"age": {"$exists": False}}, ["ann"]),
        ({"nick": {"$null": False}, "age": {"$lt": 18}}, ["Bob"]),
        ({"$or": [{"age": 17}, {"nick": None}]}, ["ann", "Bob"]),
        ({"$nor": [{"age": 17}, {"nick": None}]}, ["Ann", "Bob ", "Çelik"]),
        ({"$and": [{"age": 30}, {"$not": {"name": "Ann"}}]}, ["Çelik"]),
        ({"balance": {"$gt": 7}}, ["Ann"]),  # a number compared with a Decimal field
        ({"joined": {"$gte": "2025-01-01"}}, ["Bob"]),  # an ISO string with a datetime
        ({"joined": {"$lt": dt.date(2025, 1, 1)}}, ["Bob "]),  # a date means its midnight
    ],
)
def test_filters_select_the_rows_the_language_describes(people, where, expected):
    assert names(where) == expected
    assert run_node("PersonCountNode", {"filter": where})["count"] == len(expected)


def test_sort_accepts_its_three_spellings_and_puts_null_first(people):
    by_age = ["ann", "Bob", "Ann", "Çelik", "Bob "]
    assert names({}, sort=[{"age": 1}]) == by_age
    assert names({}, sort=[{"field": "age", "direction": "asc"}]) == by_age
    assert names({}, sort=["-age", "name"]) == ["Bob ", "Ann", "Çelik", "Bob", "ann"]
    assert names({}, sort="name") == ["Ann", "Bob", "Bob ", "ann", "Çelik"]  # code points


def test_fields_count_total_limit_and_offset(people):
    out = run_node(
        "PersonListNode",
        {"sort": ["name"], "fields": ["name"], "limit": 2, "offset": 1, "count_total": True},
    )
    assert out["records"] == [{"name": "Bob"}, {"name": "Bob "}]
    assert (out["count"], out["total"], out["limit"], out["offset"]) == (2, 5, 2, 1)


def test_keyset_pages_follow_the_cursor_to_the_end(people):
    params: dict = {"sort": [{"age": -1}], "limit": 2, "fields": ["name"]}
    pages = []
    while True:
        out = run_node("PersonListNode", params)
        pages.append([r["name"] for r in out["records"]])
        if out["next_cursor"] is None:
            break
        params["after"] = out["next_cursor"]
    assert pages == [["Bob ", "Ann"], ["Çelik", "Bob"], ["ann"]]


def test_a_cursor_made_for_another_sort_or_not_a_cursor_is_refused(people):
    cursor = run_node("PersonListNode", {"sort": ["name"], "limit": 1})["next_cursor"]
    with pytest.raises(NodeExecutionError) as info:
        run_node("PersonListNode", {"sort": ["-age"], "limit": 1, "after": cursor})
    message = str(info.value.cause)
    assert "parameter 'after' expects a cursor made for this sort (age desc, id asc)" in message
    assert "made for (name asc, id asc)" in message
    with pytest.raises(ValidationError, match="parameter 'after' expects a cursor returned"):
        run_node("PersonListNode", {"after": "bm90IGEgY3Vyc29y"})


def test_bulk_update_changes_exactly_the_filtered_rows(people):
    out = run_node(
        "PersonBulkUpdateNode", {"filter": {"age": {"$not": {"$gte": 18}}}, "update": {"nick": "x"}}
    )
    assert out["updated"] == 2
    assert names({"nick": "x"}) == ["ann", "Bob"]


# -- bad input ------------------------------------------------------------------------------


def refusal(where: dict, node: str = "PersonListNode") -> InvalidFilterError:
    builder = WorkflowBuilder()
    with pytest.raises(InvalidFilterError) as info:
        builder.add_node(node, "q", {"filter": where})
        builder.build()
    return info.value


def test_an_unknown_operator_is_named_with_its_path_and_the_likely_fix(people):
    error = refusal({"$or": [{"name": {"$regx": "^A"}}]})
    assert str(error).startswith(
        "PersonListNode 'q': filter.$or[0].name.$regx: unknown operator; did you mean $regex?"
    )
    assert (error.path, error.param, error.node) == ("filter.$or[0].name.$regx", "filter", "q")
    assert "unknown operator; did you mean $and?" in str(refusal({"$andd": []}))
    assert "$gt tests a field" in str(refusal({"$gt": 5}))


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"nmae": "x"}, "filter.nmae: unknown field 'nmae'. Did you mean 'name'?"),
        ({"age": {"$regex": "1"}}, "filter.age.$regex: $regex applies to str fields; 'age' is an"),
        ({"age": {"$gt": "old"}}, "filter.age.$gt: expects an int, got str"),
        ({"age": {"$gt": 2**70}}, "filter.age.$gt: expects an int that fits in 64 bits"),
        ({"joined": {"$gte": "soon"}}, "filter.joined.$gte: expects a datetime or an ISO-8601"),
        ({"age": {"$gt": None}}, "filter.age.$gt: compares with a value, not None"),
        ({"age": {"$in": 3}}, "filter.age.$in: expects a list, got int"),
        ({"age": {"$between": [1]}}, "filter.age.$between: expects a list of 2 values, got 1"),
        ({"age": {"$exists": "yes"}}, "filter.age.$exists: expects True or False, got str"),
        ({"age": {}}, "filter.age: an empty operator object"),
        ({"age": {"gt": 5}}, "filter.age.gt: 'age' compares with a value or an operator object"),
        ({"$or": {"age": 1}}, "filter.$or: $or takes a list of filters, got dict"),
        ({"$not": [1]}, "filter.$not: a filter is a dict of field -> condition, got list"),
        ({"name": {"$like": "a\\"}}, "filter.name.$like: the pattern ends with a lone backslash"),
        ({"name": {"$regex": "(?i)a"}}, "filter.name.$regex: only (...) and (?:...) groups"),
        ({"name": {"$regex": "\\bA"}}, "filter.name.$regex: \\b is not portable"),
        ({"name": {"$regex": "a{2,1}"}}, "the repeat {2,1} has its bounds reversed"),
        ({"name": {"$regex": "[[:alpha:]]"}}, "POSIX classes like [:alpha:] are not portable"),
    ],
)
def test_bad_filters_are_refused_with_the_path_and_the_fix(people, where, message):
    assert message in str(refusal(where))


def test_filters_on_bulk_nodes_and_count_are_checked_alike(people):
    assert "filter.nmae: unknown field" in str(refusal({"nmae": 1}, "PersonCountNode"))
    assert "filter.nmae: unknown field" in str(refusal({"nmae": 1}, "PersonBulkDeleteNode"))


def test_names_never_reach_sql_unquoted(people):
    attack = 'name" = name OR 1=1; DROP TABLE persons; --'
    assert "unknown field" in str(refusal({attack: "x"}))
    builder = WorkflowBuilder()
    with pytest.raises(InvalidFilterError, match="unknown field"):
        builder.add_node("PersonListNode", "q", {"sort": [attack]})
        builder.build()
    with pytest.raises(ValidationError, match="field names from"):
        run_node("PersonListNode", {"fields": [attack]})
    # Values are always bound: this is a name no row has.
    assert names({"name": "x' OR '1'='1"}) == []
    assert count_rows(people, "persons") == 5
