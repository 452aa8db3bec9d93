"""Sagas: steps, compensations in reverse, retries, timeouts, the log and recovery."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import sqlalchemy as sa

from dataflow import DataFlow, SagaError, TransactionError, ValidationError
from dataflow.transactions import SagaRecovery
from dataflow.transactions.claims import claim
from kailash import LocalRuntime, Node, NodeExecutionError, NodeParameter, WorkflowBuilder
from tests.dataflow.conftest import count_rows, run_node
from tests.dataflow.shop import APPLIED, GUIDE_STEPS, UNTOUCHED, define, saga_workflow, state, stock


@pytest.fixture
def shop(db):
    define(db)
    stock(db)
    return db


def run_saga(steps: list, **params: object) -> dict:
    builder = WorkflowBuilder()
    builder.add_node("TransactionManagerNode", "saga", {"steps": steps, **params})
    results, _ = LocalRuntime().execute(builder.build())
    return results["saga"]


def saga_error(steps: list, **params: object) -> SagaError:
    with pytest.raises(NodeExecutionError) as info:
        run_saga(steps, **params)
    assert isinstance(info.value.cause, SagaError)
    return info.value.cause


def saga_rows(db: DataFlow) -> list[str]:
    with db.database.engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT status FROM dataflow_sagas")).scalars())


class Recorder(Node):
    """A compensation that remembers what it was given."""

    parameters = {n: NodeParameter(n) for n in ("step_input", "step_output")}
    seen: list[tuple[dict, dict | None]] = []

    def run(self, step_input: dict, step_output: dict | None) -> dict:
        self.seen.append((step_input, step_output))
        run_node("PaymentDeleteNode", {"id": step_output["id"]})  # type: ignore[index]
        return {}


class Boom(Node):
    def run(self, **_: object) -> dict:
        raise RuntimeError("card declined")


class Flaky(Node):
    failures = 0

    def run(self, **_: object) -> dict:
        if Flaky.failures:
            Flaky.failures -= 1
            raise ConnectionError("try again")
        return {"ok": True}


class Sleep(Node):
    def run(self, **_: object) -> dict:
        time.sleep(0.5)
        return {}


class FragileRollback(Node):
    """Undoes a payment, except while ``broken`` is set."""

    parameters = {n: NodeParameter(n) for n in ("step_input", "step_output")}
    broken = True

    def run(self, step_input: dict, step_output: dict | None) -> dict:
        if FragileRollback.broken:
            raise RuntimeError("payments service unavailable")
        run_node("PaymentDeleteNode", {"id": step_output["id"]})  # type: ignore[index]
        run_node("CompensationRunCreateNode", {"step": "payment"})
        return {}


class FragileLedgerUndo(Node):
    """Undoes a ledger entry of the bound tenant, except while ``broken`` is set."""

    parameters = {n: NodeParameter(n) for n in ("step_input", "step_output")}
    broken = True

    def run(self, step_input: dict, step_output: dict | None) -> dict:
        if FragileLedgerUndo.broken:
            raise RuntimeError("ledger service unavailable")
        run_node("LedgerEntryDeleteNode", {"id": step_output["id"]})  # type: ignore[index]
        return {}


NODES = (Recorder, Boom, Flaky, Sleep, FragileRollback, FragileLedgerUndo)


@pytest.fixture(autouse=True)
def nodes():
    from kailash.nodes import default_registry

    Recorder.seen = []
    for cls in NODES:
        default_registry.register(cls, replace=True)
    yield
    for cls in NODES:
        default_registry.unregister(cls.__name__)


def test_a_saga_runs_every_step_and_returns_their_outputs(shop):
    out = run_saga(GUIDE_STEPS)
    assert out["status"] == "completed"
    assert out["results"]["OrderUpdateNode"]["status"] == "paid"
    assert out["results"]["InventoryUpdateNode"]["stock"] == 9
    assert {k: state(shop)[k] for k in APPLIED} == APPLIED
    assert saga_rows(shop) == ["completed"]


def test_a_failing_step_undoes_the_completed_ones_in_reverse_order(shop):
    stock(shop, 0)
    error = saga_error(GUIDE_STEPS)
    assert error.step == "InventoryUpdateNode" and error.status == "compensated"
    assert "only 0 widget in stock" in str(error)
    after = state(shop)
    assert {k: after[k] for k in UNTOUCHED} == {**UNTOUCHED, "stock": 0}
    compensations = run_node("CompensationRunListNode")["records"]
    assert [r["step"] for r in compensations] == ["order", "payment"]
    assert saga_rows(shop) == ["compensated"]


def test_compensations_receive_their_steps_input_and_output_and_steps_take_connections(shop):
    steps = [
        {
            "name": "pay",
            "node": "PaymentCreateNode",
            "params": {"amount": 25.0},
            "connections": {"order_ref": "data.order"},
            "compensation": "Recorder",
        },
        {
            "name": "look",
            "node": "PaymentReadNode",
            "connections": {"id": "pay.id"},
            "compensation": None,
        },
        {"name": "charge", "node": "Boom", "compensation": None},
    ]
    error = saga_error(steps, data={"order": "o-9"})
    assert error.step == "charge"
    ((step_input, step_output),) = Recorder.seen
    assert step_input == {"amount": 25.0, "order_ref": "o-9"}
    assert step_output["order_ref"] == "o-9" and step_output["amount"] == 25.0
    assert run_node("PaymentCountNode")["count"] == 0


def test_a_failing_step_is_retried_with_a_doubling_backoff(shop, caplog):
    Flaky.failures = 2
    steps = [{"node": "Flaky", "compensation": None}]
    with caplog.at_level(logging.INFO, logger="dataflow.transactions"):
        out = run_saga(steps, retry_attempts=2, retry_backoff=0.01)
    assert out["status"] == "completed"
    waits = [r.getMessage().rsplit(" in ", 1)[1] for r in caplog.records if "retrying" in r.message]
    assert waits == ["0.01 s", "0.02 s"]
    Flaky.failures = 2
    error = saga_error([{**steps[0], "retry_attempts": 1}], retry_attempts=5, retry_backoff=0.01)
    assert "ConnectionError: try again" in str(error)


def test_a_saga_that_runs_past_its_timeout_is_compensated(shop):
    steps = [
        GUIDE_STEPS[0],
        {"node": "Sleep", "compensation": None},
        GUIDE_STEPS[1],
    ]
    error = saga_error(steps, timeout=0.3)
    assert error.step == "Sleep"
    assert "step 'Sleep': ran past its timeout of 0.3 s" in str(error)
    assert state(shop)["payments"] == 0
    assert state(shop)["compensations"] == ["payment"]


def test_a_workflow_step_is_one_transaction(shop):
    builder = WorkflowBuilder()
    builder.add_node("PaymentCreateNode", "pay", {})
    builder.add_node("Boom", "boom")
    builder.add_connection("pay", "result", "boom", "input")
    shop.register_workflow("checkout", builder)
    error = saga_error([{"workflow": "checkout", "compensation": "Recorder"}])
    assert error.step == "checkout"
    assert run_node("PaymentCountNode")["count"] == 0  # the workflow's first node rolled back
    assert Recorder.seen == []  # and a failed step has nothing to compensate


def test_a_registered_workflows_output_is_its_results_by_node(shop):
    builder = WorkflowBuilder()
    builder.add_node("PaymentCreateNode", "pay", {})
    builder.add_node("OrderUpdateNode", "order")
    shop.register_workflow("checkout", builder)
    out = run_saga(
        [
            {"workflow": "checkout", "params": {"pay": {"amount": 3.0}}, "compensation": None},
            {
                "node": "PaymentReadNode",
                "connections": {"id": "checkout.pay.id"},
                "compensation": None,
            },
        ]
    )
    assert out["results"]["checkout"]["order"]["status"] == "paid"
    assert out["results"]["PaymentReadNode"]["amount"] == 3.0


def test_a_failed_compensation_leaves_the_saga_to_recovery(shop):
    FragileRollback.broken = True
    steps = [{"node": "PaymentCreateNode", "compensation": "FragileRollback"}, GUIDE_STEPS[1]]
    steps.append({"node": "Boom", "compensation": None})
    error = saga_error(steps)
    assert error.status == "compensating"
    assert "db.recover_sagas() will retry it" in str(error)
    assert saga_rows(shop) == ["compensating"]
    assert state(shop)["order"] == "pending"  # the later step's compensation ran
    assert state(shop)["payments"] == 1  # this one did not
    (saga_id,) = shop.recover_sagas().failed  # still broken: kept for later
    FragileRollback.broken = False
    with claim(shop.database, f"saga:{saga_id}"):  # as if a live process held it
        assert shop.recover_sagas().in_progress == [saga_id]
    assert shop.recover_sagas().compensated == [saga_id]
    assert state(shop)["payments"] == 0
    assert state(shop)["compensations"] == ["order", "payment"]
    assert shop.recover_sagas().compensated == []


def test_recovery_compensates_as_the_tenant_and_actor_the_saga_ran_for(db):
    @db.model
    class LedgerEntry:
        amount: float
        __dataflow__ = {"multi_tenant": True, "audit_log": True}

    db.create_tables()
    FragileLedgerUndo.broken = True
    steps = [
        {"node": "LedgerEntryCreateNode", "params": {"amount": 5.0}},
        {"node": "Boom", "compensation": None},
    ]
    steps[0]["compensation"] = "FragileLedgerUndo"
    with db.tenant("t1"), db.actor("alice"):
        saga_error(steps)
        entry = run_node("LedgerEntryListNode")["records"][0]
    FragileLedgerUndo.broken = False
    assert db.recover_sagas().compensated  # with no tenant or actor bound here
    with db.tenant("t1"):
        assert run_node("LedgerEntryCountNode")["count"] == 0
        trail = run_node("LedgerEntryAuditNode", {"record_id": entry["id"]})["records"]
    assert [(r["action"], r["actor"], r["tenant_id"]) for r in trail] == [
        ("create", "alice", "t1"),
        ("delete", "alice", "t1"),
    ]


def test_concurrent_recoveries_compensate_each_saga_once(shop):
    FragileRollback.broken = True
    steps = [{"node": "PaymentCreateNode", "compensation": "FragileRollback"}]
    steps.append({"node": "Boom", "compensation": None})
    for _ in range(4):
        saga_error(steps)
    FragileRollback.broken = False
    reports = []
    threads = [threading.Thread(target=lambda: reports.append(shop.recover_sagas())) for _ in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    compensated = [s for r in reports for s in r.compensated]
    assert len(compensated) == 4 and len(set(compensated)) == 4
    assert all(not r.failed for r in reports)
    assert state(shop)["compensations"] == ["payment"] * 4
    assert run_node("PaymentCountNode")["count"] == 0


def test_recover_sagas_on_start_finishes_sagas_left_in_flight(shop, url):
    FragileRollback.broken = True
    saga_error(
        [
            {"node": "PaymentCreateNode", "compensation": "FragileRollback"},
            {"node": "Boom", "compensation": None},
        ]
    )
    FragileRollback.broken = False
    shop.close()  # the process that ran the saga is gone
    with DataFlow(url, recover_sagas_on_start=True) as restarted:
        define(restarted)
        restarted.create_tables()
        assert saga_rows(restarted) == ["compensated"]
        assert run_node("PaymentCountNode")["count"] == 0


def test_a_saga_cannot_run_inside_a_transaction_scope(shop):
    builder = WorkflowBuilder()
    builder.add_node("TransactionScopeNode", "tx", {})
    builder.add_node("TransactionManagerNode", "saga", {"steps": GUIDE_STEPS})
    builder.add_connection("tx", "result", "saga", "input")
    with pytest.raises(NodeExecutionError) as info:
        LocalRuntime().execute(builder.build())
    assert isinstance(info.value.cause, TransactionError)
    assert "cannot run inside TransactionScopeNode 'tx'" in str(info.value.cause)
    assert state(shop)["payments"] == 0
    with pytest.raises(TransactionError, match=r"db.transaction\(\) block"), shop.transaction():
        shop.recover_sagas()


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    ("params", "problem"),
    [
        (
            {"steps": [{"node": "PaymentCreateNod", "compensation": None}]},
            "step 0: 'node' names a registered node type: unknown node type 'PaymentCreateNod'. "
            "Did you mean 'PaymentCreateNode'?",
        ),
        (
            {"steps": [{"node": "PaymentCreateNode"}]},
            "saga: step 'PaymentCreateNode' names no compensation",
        ),
        (
            {"steps": [{"node": "PaymentCreateNode", "compensation": "PaymentRollback"}]},
            "'compensation' names a registered node type: unknown node type 'PaymentRollback'",
        ),
        (
            {"steps": [{"node": "PaymentCreateNode", "compensation": "PaymentListNode"}]},
            "it does not declare step_input, step_output. Or name a generated node",
        ),
        (
            {"steps": [{"node": "PaymentReadNode", "connections": {"id": "later.id"}}]},
            "connection 'id' comes from 'later', not an earlier step (data)",
        ),
        (
            {"steps": [{"node": "PaymentCreateNode", "params": {"amout": 1}}]},
            "PaymentCreateNode 'PaymentCreateNode': unknown parameter 'amout'",
        ),
        (
            {"steps": [{"workflow": "nowhere"}]},
            "'nowhere' is not one (registered: none yet)",
        ),
        (
            {"transaction_type": "two_phase_commit", "steps": [{"node": "PaymentCreateNode"}]},
            "two_phase_commit: step 'PaymentCreateNode' runs on sqlite",
        ),
        (
            {"transaction_type": "two_phase_commit", "steps": [{"node": "Boom"}]},
            "runs Boom, which is not a DataFlow node",
        ),
        (
            {"transaction_type": "two_phase_commit", "steps": GUIDE_STEPS},
            "a two-phase commit rolls back instead of compensating",
        ),
    ],
)
def test_bad_steps_are_refused_before_anything_runs(shop, params, problem):
    builder = WorkflowBuilder()
    builder.add_node("TransactionManagerNode", "payment_flow", params)
    with pytest.raises(ValidationError) as info:
        builder.build()
    assert str(info.value).startswith("TransactionManagerNode 'payment_flow': ")
    assert problem in str(info.value)
    assert info.value.param == "steps"
    assert count_rows(shop, "payments") == 0


def test_the_guides_saga_runs_from_a_workflow_builder(shop):
    results, _ = LocalRuntime().execute(saga_workflow(retry_attempts=3).build())
    assert results["payment_flow"]["status"] == "completed"


def test_a_saga_on_an_in_memory_database_runs_and_compensates():
    with define(DataFlow(":memory:")) as db:
        stock(db)
        assert run_saga(GUIDE_STEPS)["status"] == "completed"
        stock(db, 0)
        assert saga_error(GUIDE_STEPS).status == "compensated"
        assert state(db)["compensations"] == ["order", "payment"]
        assert db.recover_sagas() == SagaRecovery()
