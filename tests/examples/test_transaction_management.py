"""The guide's "Transaction Management" block, unchanged, with the shop's models and nodes."""

from __future__ import annotations

import pytest

from dataflow import SagaError
from kailash import LocalRuntime, NodeExecutionError, WorkflowBuilder
from tests.dataflow.shop import APPLIED, UNTOUCHED, define, state, stock
from tests.examples.guide import block, run_block

HEADING = "Transaction Management"


def test_the_block_is_the_guides():
    code = block(HEADING)
    assert '"transaction_type": "saga",  # or "two_phase_commit"' in code
    assert 'workflow.add_node("TransactionScopeNode", "atomic_operation", {' in code


def test_the_guides_saga_and_scope_run_and_the_saga_compensates_when_a_step_fails(db, backend):
    define(db)
    stock(db)
    workflow = WorkflowBuilder()
    run_block(HEADING, {"workflow": workflow})
    results, _ = LocalRuntime().execute(workflow.build())
    assert results["payment_flow"]["status"] == "completed"
    assert results["atomic_operation"]["isolation_level"] == "READ COMMITTED"
    assert {k: state(db)[k] for k in APPLIED} == APPLIED

    stock(db, 0)  # now the inventory step fails and the first two are undone
    workflow = WorkflowBuilder()
    run_block(HEADING, {"workflow": workflow})
    with pytest.raises(NodeExecutionError) as info:
        LocalRuntime().execute(workflow.build())
    assert info.value.node_id == "payment_flow"
    assert isinstance(info.value.cause, SagaError)
    assert info.value.cause.status == "compensated"
    after = state(db)
    assert {k: after[k] for k in UNTOUCHED} == {**UNTOUCHED, "stock": 0}
    assert after["compensations"] == ["order", "payment"]
