"""Property test: random sequences of every node type, run as tenants A and B over shared tables.

Both tenants draw natural keys (emails) from one small pool and ids from every row either has
made, so upserts, reads and writes constantly aim at the other tenant's rows. After each
operation: nothing it returned belongs to the other tenant, its counts are its tenant's, and
the other tenant's rows (audit rows included) are exactly as they were, column for column.
``DATAFLOW_TENANCY_EXAMPLES`` sets the number of sequences per backend.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataflow import IntegrityError, NotFoundError, VersionConflictError
from kailash import NodeExecutionError
from tests.dataflow.conftest import every_tenant, run_node

pytestmark = pytest.mark.app_role

EXAMPLES = int(os.environ.get("DATAFLOW_TENANCY_EXAMPLES", "25"))
TENANTS = ("A", "B")
EMAILS = st.sampled_from(["e0", "e1", "e2"])
NAMES = st.sampled_from(["ann", "bob"])
TABLES = ("orders", "customers", "contacts", "dataflow_audit_log")  # orders refer to customers
#: Refusals an operation may meet (a taken key, another tenant's id, a stale version).
EXPECTED = (IntegrityError, NotFoundError, VersionConflictError)


@pytest.fixture
def shop(db):
    @db.model
    class Customer:
        name: str
        email: str
        __dataflow__ = {
            "multi_tenant": True,
            "soft_delete": True,
            "versioned": True,
            "audit_log": True,
        }
        __indexes__ = [{"name": "ux_customers_email", "fields": ["email"], "unique": True}]

    # The same shape without the other options: its writes take the fast paths (ON CONFLICT,
    # COPY) that an audited model's writes leave for statements that read images first.
    @db.model
    class Contact:
        name: str
        email: str
        __dataflow__ = {"multi_tenant": True}
        __indexes__ = [{"name": "ux_contacts_email", "fields": ["email"], "unique": True}]

    @db.model
    class Order:
        customer_id: int
        total: float
        __dataflow__ = {"multi_tenant": True}

    db.create_tables()
    return db


def operations(
    model: str, ids: st.SearchStrategy[int]
) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    """One node of ``model`` (Customer or Contact), or of Order, and its parameters."""
    ops = _model_operations(ids)
    if model == "Contact":  # no soft delete, versions or audit log
        ops = ops.filter(lambda op: not op[0].endswith(("RestoreNode", "AuditNode"))).map(
            lambda op: (op[0].replace("Customer", "Contact"), _plain(op[1]))
        )
    return st.one_of(ops, _order_operations(ids))


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters for a model without versions or soft delete."""
    out = {k: v for k, v in params.items() if k != "version"}
    if "soft_delete" in out:
        out["soft_delete"] = False
    return out


def _model_operations(ids: st.SearchStrategy[int]) -> st.SearchStrategy[tuple[str, dict]]:
    row = st.fixed_dictionaries({"email": EMAILS, "name": NAMES})
    rows = st.lists(row, min_size=1, max_size=3)
    return st.one_of(
        st.tuples(st.just("CustomerCreateNode"), row),
        st.tuples(st.just("CustomerReadNode"), st.fixed_dictionaries({"id": ids})),
        st.tuples(
            st.just("CustomerUpdateNode"),
            st.fixed_dictionaries(
                {"id": ids, "name": NAMES}, optional={"version": st.integers(1, 3)}
            ),
        ),
        st.tuples(
            st.just("CustomerDeleteNode"),
            st.fixed_dictionaries({"id": ids, "soft_delete": st.booleans()}),
        ),
        st.tuples(st.just("CustomerRestoreNode"), st.fixed_dictionaries({"id": ids})),
        st.tuples(st.just("CustomerUpsertNode"), row),
        st.tuples(
            st.just("CustomerUpsertNode"),
            st.fixed_dictionaries({"id": ids, "email": EMAILS, "name": NAMES}).map(
                lambda p: {**p, "conflict_on": ["id"]}
            ),
        ),
        st.tuples(
            st.just("CustomerListNode"),
            st.fixed_dictionaries({"count_total": st.just(True)}, optional={"filter": row}),
        ),
        st.tuples(st.just("CustomerCountNode"), st.just({})),
        st.tuples(
            st.just("CustomerAggregateNode"),
            st.just({"group_by": ["tenant_id"], "aggregate": {"n": {"$count": "*"}}}),
        ),
        st.tuples(
            st.just("CustomerBulkCreateNode"),
            st.fixed_dictionaries(
                {
                    "data": rows,
                    "conflict_resolution": st.sampled_from(["error", "skip", "upsert"]),
                    "atomic": st.just(False),
                }
            ),
        ),
        st.tuples(
            st.just("CustomerBulkUpdateNode"),
            st.one_of(
                st.fixed_dictionaries({"filter": st.just({}), "update": row}),
                st.fixed_dictionaries(
                    {
                        "data": st.lists(
                            st.fixed_dictionaries({"id": ids, "name": NAMES}),
                            min_size=1,
                            max_size=3,
                        ),
                        "atomic": st.just(False),
                    }
                ),
            ),
        ),
        st.tuples(
            st.just("CustomerBulkDeleteNode"),
            st.fixed_dictionaries(
                {"filter": st.just({}), "confirm_all": st.just(True), "soft_delete": st.booleans()}
            ),
        ),
        st.tuples(
            st.just("CustomerBulkUpsertNode"),
            st.fixed_dictionaries({"data": rows, "atomic": st.just(False)}),
        ),
        st.tuples(
            st.just("CustomerBulkUpsertNode"),
            st.fixed_dictionaries(
                {
                    "data": st.lists(
                        st.fixed_dictionaries({"id": ids, "email": EMAILS, "name": NAMES}),
                        min_size=1,
                        max_size=2,
                    ),
                    "conflict_on": st.just(["id"]),
                    "atomic": st.just(False),
                }
            ),
        ),
        st.tuples(st.just("CustomerAuditNode"), st.just({})),
    )


def _order_operations(ids: st.SearchStrategy[int]) -> st.SearchStrategy[tuple[str, dict]]:
    return st.one_of(
        st.tuples(
            st.just("OrderCreateNode"),
            st.fixed_dictionaries({"customer_id": ids, "total": st.just(1.0)}),
        ),
        st.tuples(
            st.just("OrderListNode"),
            st.fixed_dictionaries(
                {
                    "filter": st.fixed_dictionaries(
                        {"customer": st.fixed_dictionaries({"name": NAMES})}
                    )
                }
            ),
        ),
        st.tuples(
            st.just("OrderCountNode"),
            st.fixed_dictionaries({"filter": st.fixed_dictionaries({"customer": st.just({})})}),
        ),
    )


def snapshot(db, tenant: str) -> dict[str, list[tuple]]:
    """Every row of ``tenant`` in every table, read with plain SQL."""
    with every_tenant(db) as conn:
        return {
            table: [
                tuple(r)
                for r in conn.execute(
                    sa.text(f"SELECT * FROM {table} WHERE tenant_id = :t ORDER BY id"),
                    {"t": tenant},
                )
            ]
            for table in TABLES
        }


#: Each model's table, and the condition its live rows meet.
LIVE = {"Customer": ("customers", "deleted_at IS NULL"), "Contact": ("contacts", "1 = 1")}


def live_rows(db, model: str, tenant: str) -> int:
    table, live = LIVE[model]
    with every_tenant(db) as conn:
        return conn.execute(
            sa.text(f"SELECT COUNT(*) FROM {table} WHERE tenant_id = :t AND {live}"),
            {"t": tenant},
        ).scalar_one()


def order_customers(db, order_ids: list[int]) -> list[tuple[str, str]]:
    """(tenant, name) of the customer of each order."""
    if not order_ids:
        return []
    with every_tenant(db) as conn:
        stmt = sa.text(
            "SELECT c.tenant_id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id "
            "WHERE o.id IN :ids"
        ).bindparams(sa.bindparam("ids", expanding=True))
        return [tuple(r) for r in conn.execute(stmt, {"ids": order_ids})]


def returned_rows(output: dict[str, Any]) -> list[dict[str, Any]]:
    if isinstance(output.get("records"), list):
        return output["records"]
    return [output] if "tenant_id" in output else []


def check(db, model: str, tenant: str, node: str, params: dict, output: dict, before: int) -> None:
    """What an operation that succeeded returned and counted belongs to its tenant."""
    for row in returned_rows(output):
        if "tenant_id" in row:
            assert row["tenant_id"] == tenant, (node, row)
    op = node.removeprefix(model)
    if op == "CountNode":
        assert output["count"] == live_rows(db, model, tenant)
    elif op == "ListNode" and "filter" not in params:
        assert output["total"] == output["count"] == live_rows(db, model, tenant)
    elif op == "AggregateNode":
        expected = [{"tenant_id": tenant, "n": before}] if before else []
        assert output["records"] == expected
    elif op in ("BulkUpdateNode", "BulkDeleteNode") and params.get("filter") == {}:
        assert output["processed"] == before
    elif node == "OrderListNode":
        name = params["filter"]["customer"]["name"]
        ids = [r["id"] for r in output["records"]]
        assert set(order_customers(db, ids)) <= {(tenant, name)}


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_operation_reaches_a_row_of_the_other_tenant(shop, data):
    with every_tenant(shop) as conn:
        for table in TABLES:
            conn.execute(sa.text(f"DELETE FROM {table}"))
    # Each tenant starts with rows on the shared keys, so every operation has targets.
    for tenant in TENANTS:
        seed = [{"email": "e0", "name": "ann"}, {"email": "e1", "name": "bob"}]
        for model in LIVE:
            run_node(f"{model}BulkCreateNode", {"data": seed, "tenant_id": tenant})
    state = {t: snapshot(shop, t) for t in TENANTS}
    for _ in range(data.draw(st.integers(3, 10), label="length")):
        # Ids of either tenant's customers, and one that matches no row.
        known = [0, *(r[0] for t in TENANTS for r in state[t]["customers"])]
        tenant = data.draw(st.sampled_from(TENANTS), label="tenant")
        model = data.draw(st.sampled_from(list(LIVE)), label="model")
        if model == "Contact":
            known = [0, *(r[0] for t in TENANTS for r in state[t]["contacts"])]
        node, params = data.draw(operations(model, st.sampled_from(known)), label="operation")
        before = live_rows(shop, model, tenant)
        try:
            output = run_node(node, {**params, "tenant_id": tenant})
        except NodeExecutionError as exc:
            assert isinstance(exc.cause, EXPECTED), exc.cause
        else:
            check(shop, model, tenant, node, params, output, before)
        for other in TENANTS:
            now = snapshot(shop, other)
            if other != tenant:
                assert now == state[other], f"{node} as {tenant} changed {other}'s rows"
            state[other] = now
