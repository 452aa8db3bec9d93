"""Generated nodes as saga compensations: Delete undoes Create, Update undoes Update, Restore or
Create undoes Delete — live, and from the images kept in the saga log after a crash."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dataflow import DataFlow, SagaError, ValidationError
from kailash import LocalRuntime, Node, NodeExecutionError, WorkflowBuilder
from kailash.nodes import default_registry
from tests.dataflow.conftest import run_node

OPENED = dt.date(2020, 2, 29)


class Decline(Node):
    """A step that always fails, so the completed ones are compensated."""

    def run(self, **_: object) -> dict:
        raise RuntimeError("card declined")


class Crash(BaseException):
    """Stands for the process dying: nothing catches it, so nothing is compensated."""


class Die(Node):
    def run(self, **_: object) -> dict:
        raise Crash


@pytest.fixture(autouse=True)
def nodes():
    for cls in (Decline, Die):
        default_registry.register(cls, replace=True)
    yield
    for cls in (Decline, Die):
        default_registry.unregister(cls.__name__)


@pytest.fixture
def bank(db):
    @db.model
    class Account:
        owner: str
        balance: float = 0.0
        note: str = ""
        opened: dt.date = OPENED
        __dataflow__ = {"soft_delete": True, "versioned": True, "audit_log": True}

    @db.model
    class Transfer:
        memo: str

    db.create_tables()
    return db


def saga(db: DataFlow, steps: list[dict[str, Any]]) -> dict[str, Any]:
    builder = WorkflowBuilder()
    builder.add_node(db.nodes["TransactionManagerNode"], "saga", {"steps": steps})
    results, _ = LocalRuntime().execute(builder.build())
    return results["saga"]


def failed_saga(db: DataFlow, steps: list[dict[str, Any]]) -> SagaError:
    with pytest.raises(NodeExecutionError) as info:
        saga(db, [*steps, {"node": "Decline", "compensation": None}])
    assert isinstance(info.value.cause, SagaError)
    assert info.value.cause.status == "compensated"
    return info.value.cause


def crashed_saga(db: DataFlow, steps: list[dict[str, Any]]) -> None:
    """Run the steps, then die as a killed process would: the saga stays in the log."""
    with pytest.raises(Crash):
        saga(db, [*steps, {"node": "Die", "compensation": None}])


def account(**values: Any) -> dict[str, Any]:
    return run_node("AccountCreateNode", {"owner": "ann", "balance": 100.0, **values})


def read(model: str, pk: Any) -> dict[str, Any]:
    return run_node(f"{model}ReadNode", {"id": pk, "include_deleted": True})


def trail(pk: Any) -> list[str]:
    return [r["action"] for r in run_node("AccountAuditNode", {"record_id": pk})["records"]]


def test_a_create_step_is_undone_by_deleting_the_row_it_created_for_good(bank):
    failed_saga(
        bank,
        [
            {
                "node": "AccountCreateNode",
                "params": {"owner": "bob"},
                "compensation": "AccountDeleteNode",
            },
            {
                "node": "TransferCreateNode",
                "params": {"memo": "m"},
                "compensation": "TransferDeleteNode",
            },
        ],
    )
    # Removed, not soft-deleted: the row never should have existed.
    assert run_node("AccountCountNode", {"include_deleted": True})["count"] == 0
    assert run_node("TransferCountNode")["count"] == 0
    (entry,) = run_node("AccountAuditNode", {"action_type": "delete"})["records"]
    assert trail(entry["record_id"]) == ["create", "delete"]


def test_an_update_step_is_undone_by_writing_back_only_the_values_it_overwrote(bank):
    pk = account(note="kept")["id"]
    steps = [
        {
            "node": "AccountUpdateNode",
            "params": {"id": pk, "owner": "bob", "balance": 40.0, "opened": dt.date(2024, 1, 1)},
            "compensation": "AccountUpdateNode",
        },
        # A later step changes another field; undoing the first one leaves it alone.
        {
            "name": "note",
            "node": "AccountUpdateNode",
            "params": {"id": pk, "note": "new"},
            "compensation": None,
        },
    ]
    failed_saga(bank, steps)
    after = read("Account", pk)
    assert (after["owner"], after["balance"], after["opened"]) == ("ann", 100.0, OPENED)
    assert after["note"] == "new"
    assert after["version"] == 4
    assert trail(pk) == ["create", "update", "update", "update"]


@pytest.mark.parametrize(
    ("model", "params", "compensation"),
    [
        ("Account", {}, "AccountRestoreNode"),
        ("Account", {"soft_delete": False}, "AccountRestoreNode"),
        ("Account", {"soft_delete": False}, "AccountCreateNode"),
        ("Transfer", {}, "TransferCreateNode"),
    ],
    ids=["soft delete", "hard delete of a soft-delete model", "re-create", "hard delete"],
)
def test_a_delete_step_is_undone_by_bringing_the_row_back_as_it_was(
    bank, model, params, compensation
):
    values = {"owner": "ann", "balance": 7.5} if model == "Account" else {"memo": "rent"}
    before = run_node(f"{model}CreateNode", values)
    step = {"node": f"{model}DeleteNode", "params": {"id": before["id"], **params}}
    failed_saga(bank, [{**step, "compensation": compensation}])
    after = read(model, before["id"])
    kept = [*values, "id", "created_at"] + (["deleted_at"] if model == "Account" else [])
    assert {k: after[k] for k in kept} == {k: before[k] for k in kept}
    assert run_node(f"{model}CountNode")["count"] == 1
    if model == "Account":
        assert after["version"] > before["version"]
        assert trail(before["id"])[-1] == "restore"


def test_a_purged_soft_deleted_row_comes_back_still_deleted(bank):
    pk = account()["id"]
    run_node("AccountDeleteNode", {"id": pk})
    deleted = read("Account", pk)
    step = {
        "node": "AccountDeleteNode",
        "params": {"id": pk, "soft_delete": False, "include_deleted": True},
    }
    failed_saga(bank, [{**step, "compensation": "AccountCreateNode"}])
    assert read("Account", pk)["deleted_at"] == deleted["deleted_at"]
    assert run_node("AccountCountNode")["count"] == 0


def test_recovery_undoes_generated_compensations_from_the_images_in_the_saga_log(bank):
    updated = account(owner="ann")["id"]
    deleted = account(owner="cy", balance=3.0)["id"]
    before = read("Account", deleted)
    crashed_saga(
        bank,
        [
            {
                "node": "TransferCreateNode",
                "params": {"memo": "x"},
                "compensation": "TransferDeleteNode",
            },
            {
                "node": "AccountUpdateNode",
                "params": {"id": updated, "balance": 1.0, "opened": dt.date(2030, 1, 1)},
                "compensation": "AccountUpdateNode",
            },
            {
                "node": "AccountDeleteNode",
                "params": {"id": deleted, "soft_delete": False},
                "compensation": "AccountCreateNode",
            },
        ],
    )
    assert run_node("TransferCountNode")["count"] == 1  # nothing undone by the dead process
    assert run_node("AccountCountNode")["count"] == 1
    assert len(bank.recover_sagas().compensated) == 1
    assert run_node("TransferCountNode")["count"] == 0
    back = read("Account", updated)
    assert (back["balance"], back["opened"]) == (100.0, OPENED)
    again = read("Account", deleted)
    assert {k: again[k] for k in ("owner", "balance", "created_at", "opened")} == {
        k: before[k] for k in ("owner", "balance", "created_at", "opened")
    }


def test_generated_compensations_act_for_the_tenant_and_actor_the_saga_ran_for(db):
    @db.model
    class LedgerEntry:
        amount: float
        __dataflow__ = {"multi_tenant": True, "audit_log": True}

    db.create_tables()
    with db.tenant("t1"), db.actor("alice"):
        entry = run_node("LedgerEntryCreateNode", {"amount": 5.0})
        crashed_saga(
            db,
            [
                {
                    "node": "LedgerEntryCreateNode",
                    "params": {"amount": 1.0},
                    "compensation": "LedgerEntryDeleteNode",
                },
                {
                    "node": "LedgerEntryUpdateNode",
                    "params": {"id": entry["id"], "amount": 9.0},
                    "compensation": "LedgerEntryUpdateNode",
                },
            ],
        )
    assert db.recover_sagas().compensated  # with no tenant or actor bound here
    with db.tenant("t1"):
        (left,) = run_node("LedgerEntryListNode")["records"]
        log = run_node("LedgerEntryAuditNode", {"action_type": ["delete", "update"]})["records"]
    assert (left["id"], left["amount"]) == (entry["id"], 5.0)
    assert [(r["action"], r["actor"], r["tenant_id"]) for r in log] == [
        ("update", "alice", "t1"),
        ("update", "alice", "t1"),
        ("delete", "alice", "t1"),
    ]


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    ("step", "problem"),
    [
        (
            {
                "node": "AccountCreateNode",
                "params": {"owner": "x"},
                "compensation": "AccountUpdateNode",
            },
            "compensation AccountUpdateNode cannot undo step 'AccountCreateNode': a "
            "AccountCreateNode step is undone by AccountDeleteNode",
        ),
        (
            {
                "node": "AccountCreateNode",
                "params": {"owner": "x"},
                "compensation": "TransferDeleteNode",
            },
            "compensation TransferDeleteNode undoes steps of Transfer, but step "
            "'AccountCreateNode' runs AccountCreateNode",
        ),
        (
            {
                "node": "AccountUpsertNode",
                "params": {"id": 1, "owner": "x"},
                "compensation": "AccountDeleteNode",
            },
            "a AccountUpsertNode step has no generated compensation",
        ),
        (
            {
                "node": "AccountCreateNode",
                "params": {"owner": "x"},
                "compensation": "AccountCountNode",
            },
            "it does not declare step_input, step_output. Or name a generated node",
        ),
        (
            {"workflow": "open", "compensation": "AccountDeleteNode"},
            "a workflow step needs a compensation node taking step_input and step_output",
        ),
    ],
)
def test_generated_compensations_that_cannot_undo_the_step_are_refused_at_build_time(
    bank, step, problem
):
    builder = WorkflowBuilder()
    builder.add_node("AccountCreateNode", "create", {"owner": "x"})
    bank.register_workflow("open", builder)
    saga_builder = WorkflowBuilder()
    saga_builder.add_node(bank.nodes["TransactionManagerNode"], "saga", {"steps": [step]})
    with pytest.raises(ValidationError) as info:
        saga_builder.build()
    assert problem in str(info.value)
    assert info.value.param == "steps"


@pytest.mark.sqlite_only
def test_a_generated_compensation_of_another_dataflows_step_is_refused(bank):
    with DataFlow(":memory:", name="other") as other:

        @other.model
        class Account:
            owner: str

        step = {
            "node": "AccountCreateNode",
            "params": {"owner": "x", "database": "other"},
            "compensation": "AccountDeleteNode",
        }
        builder = WorkflowBuilder()
        builder.add_node(bank.nodes["TransactionManagerNode"], "saga", {"steps": [step]})
        with pytest.raises(ValidationError, match="must be nodes of the DataFlow running the saga"):
            builder.build()
