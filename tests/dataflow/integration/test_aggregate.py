"""AggregateNode: groups, aggregates, having, sort and limit, and what it refuses."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from dataflow import InvalidFilterError, ValidationError
from kailash import LocalRuntime, Node, NodeExecutionError, WorkflowBuilder
from tests.dataflow.conftest import count_rows, run_node


@pytest.fixture
def sales(db):
    @db.model
    class Sale:
        region: str
        item: str
        qty: int
        price: Decimal
        note: str | None = None
        sold: dt.date | None = None

    rows = [
        ("north", "pen", 1, "1.10", None, dt.date(2025, 1, 1)),
        ("north", "pen", 2, "1.10", "gift", dt.date(2025, 1, 3)),
        ("north", "ink", 5, "3.00", None, None),
        ("south", "pen", 4, "0.90", "bulk", dt.date(2025, 2, 1)),
        ("west ", "ink", 7, "2.50", None, dt.date(2024, 12, 31)),
    ]
    for region, item, qty, price, note, sold in rows:
        run_node(
            "SaleCreateNode",
            {
                "region": region,
                "item": item,
                "qty": qty,
                "price": Decimal(price),
                "note": note,
                "sold": sold,
            },
        )
    return db


def aggregate(params: dict) -> list[dict]:
    out = run_node("SaleAggregateNode", params)
    assert out["count"] == len(out["records"])
    return out["records"]


def test_groups_come_back_with_typed_values_in_group_order(sales):
    rows = aggregate(
        {
            "group_by": ["region"],
            "aggregate": {
                "n": {"$count": "*"},
                "notes": {"$count": "note"},
                "items": {"$count_distinct": "item"},
                "units": {"$sum": "qty"},
                "revenue": {"$sum": "price"},
                "mean": {"$avg": "qty"},
                "first": {"$min": "sold"},
                "cheapest": {"$min": "price"},
                "last_item": {"$max": "item"},
            },
        }
    )
    assert [r["region"] for r in rows] == ["north", "south", "west "]
    north = rows[0]
    assert north == {
        "region": "north",
        "n": 3,
        "notes": 1,
        "items": 2,
        "units": 8,
        "revenue": Decimal("5.20"),
        "mean": 8 / 3,
        "first": dt.date(2025, 1, 1),
        "cheapest": Decimal("1.10"),
        "last_item": "pen",
    }
    assert type(north["units"]) is int and type(north["mean"]) is float
    assert isinstance(north["revenue"], Decimal)


def test_without_group_by_there_is_one_row_even_over_no_rows(sales):
    assert aggregate({"aggregate": {"n": {"$count": "*"}, "units": {"$sum": "qty"}}}) == [
        {"n": 5, "units": 19}
    ]
    empty = aggregate(
        {
            "filter": {"qty": {"$gt": 100}},
            "aggregate": {"n": {"$count": "*"}, "units": {"$sum": "qty"}, "mean": {"$avg": "qty"}},
        }
    )
    assert empty == [{"n": 0, "units": None, "mean": None}]


def test_filter_having_sort_and_limit_shape_the_groups(sales):
    params = {
        "filter": {"item": "pen"},
        "group_by": ["region", "item"],
        "aggregate": {"units": {"$sum": "qty"}},
        "having": {"$or": [{"units": {"$gte": 3}}, {"region": {"$startswith": "s"}}]},
        "sort": [{"units": -1}],
    }
    assert aggregate(params) == [
        {"region": "south", "item": "pen", "units": 4},
        {"region": "north", "item": "pen", "units": 3},
    ]
    assert aggregate({**params, "limit": 1}) == [{"region": "south", "item": "pen", "units": 4}]
    assert [r["item"] for r in aggregate({"group_by": "item", "sort": ["-item"]})] == [
        "pen",
        "ink",
    ]


def test_aliases_are_any_string_and_never_reach_sql(sales):
    alias = 'x" FROM sales; DROP TABLE sales; --'
    rows = aggregate(
        {
            "aggregate": {alias: {"$sum": "qty"}},
            "having": {alias: {"$gt": 0}},
            "sort": [{alias: -1}],
        }
    )
    assert rows == [{alias: 19}]
    assert count_rows(sales, "sales") == 5


def build(params: dict) -> None:
    builder = WorkflowBuilder()
    builder.add_node("SaleAggregateNode", "agg", params)
    builder.build()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"aggregate": {"n": {"$cnt": "*"}}}, "aggregate.n.$cnt: unknown aggregate; did you mean"),
        ({"aggregate": {"n": {"$sum": "region"}}}, "$sum does not apply to 'region', a str field"),
        ({"aggregate": {"n": {"$sum": "*"}}}, "aggregate.n.$sum: expects a field of Sale;"),
        ({"aggregate": {"n": {"$sum": "qty", "$max": "qty"}}}, "expects one operator and its"),
        ({"aggregate": {"$n": {"$count": "*"}}}, "an alias is a non-empty str"),
        ({"group_by": ["qty"], "aggregate": {"qty": {"$count": "*"}}}, "also a group_by field"),
        ({"group_by": ["regoin"]}, "parameter 'group_by' expects field names"),
        ({"group_by": ["region"], "having": {"unit": 1}}, "having.unit: unknown field 'unit'"),
        ({"group_by": ["region"], "sort": ["qty"]}, "sort[0]: unknown field 'qty'"),
        ({"aggregate": {"n": {"$count": "*"}}, "having": {"n": {"$gt": "x"}}}, "expects an int"),
        ({"filter": {"qty": {"$gt": 1}}}, "nothing to compute; give aggregate"),
    ],
)
def test_bad_aggregates_are_refused_when_the_workflow_is_built(sales, params, message):
    with pytest.raises(ValidationError) as info:
        build(params)
    assert message in str(info.value)
    assert str(info.value).startswith("SaleAggregateNode 'agg': ")


def test_a_having_path_names_the_having_parameter(sales):
    with pytest.raises(InvalidFilterError) as info:
        build({"group_by": ["region"], "having": {"region": {"$regx": "n"}}})
    assert (info.value.param, info.value.path) == ("having", "having.region.$regx")


def test_an_aggregate_from_a_connection_is_checked_when_the_workflow_runs(sales):
    class Spec(Node):
        def run(self) -> dict:
            return {"spec": {"units": {"$sum": "note"}}}

    builder = WorkflowBuilder()
    builder.add_node(Spec, "spec")
    builder.add_node("SaleAggregateNode", "agg", {"having": {"units": {"$gt": 1}}})
    builder.add_connection("spec", "spec", "agg", "aggregate")
    workflow = builder.build()  # having names an alias that only the connection brings
    with pytest.raises(NodeExecutionError) as info:
        LocalRuntime().execute(workflow)
    assert "$sum does not apply to 'note', a str field" in str(info.value.cause)


def test_run_parameters_are_checked_with_the_params_they_join(sales):
    builder = WorkflowBuilder()
    builder.add_node(
        "SaleAggregateNode", "agg", {"group_by": ["region"], "aggregate": {"n": {"$count": "*"}}}
    )
    workflow = builder.build()
    results, _ = LocalRuntime().execute(workflow, parameters={"agg": {"having": {"n": {"$gt": 1}}}})
    assert results["agg"]["records"] == [{"region": "north", "n": 3}]
    with pytest.raises(ValidationError, match="having.units: unknown field"):
        LocalRuntime().execute(workflow, parameters={"agg": {"having": {"units": 1}}})
