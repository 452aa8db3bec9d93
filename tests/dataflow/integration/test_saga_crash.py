"""A saga killed with SIGKILL at each boundary of its log ends whole after recover_sagas().

The boundaries are the saga's durable writes: started; each step running and done; completed —
or, when the last step fails, failed, each compensation, compensated.
"""

from __future__ import annotations

import pytest

from dataflow import DataFlow
from dataflow.transactions import SagaRecovery
from tests.dataflow.conftest import run_node
from tests.dataflow.crash_child import KILLED, after_crash
from tests.dataflow.shop import APPLIED, SKU, STOCK, UNTOUCHED, define, state, stock

# (stock, first boundary to kill at, boundaries in all, how an unkilled run ends). Out of stock,
# the last step fails; its first six boundaries are those of the saga that completes.
SCENARIOS = {"completes": (STOCK, 1, 8, 0), "fails at the last step": (0, 7, 10, 3)}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_saga_killed_at_each_boundary_ends_applied_or_compensated_once(
    url, backend, crashes, scenario
):
    stock_level, first, boundaries, unkilled = SCENARIOS[scenario]
    untouched = {**UNTOUCHED, "stock": stock_level}
    db = define(DataFlow(url))
    try:
        for kill_at in range(first, boundaries + 2):
            stock(db, stock_level)
            code = crashes.run("saga", kill_at, url)
            if kill_at > boundaries:
                assert code == unkilled, "the saga has more boundaries than expected"
                break
            assert code == KILLED, f"the saga ended before boundary {kill_at}"
            report = after_crash(db.recover_sagas)
            assert not report.failed and not report.in_progress
            after = state(db)
            seen = {k: after[k] for k in APPLIED}
            assert seen in (APPLIED, untouched), f"killed at boundary {kill_at}: {after}"
            # Each compensation ran at most once, and only for steps that had completed.
            if seen == APPLIED:
                assert after["compensations"] == []
            else:
                assert len(set(after["compensations"])) == len(after["compensations"])
                assert set(after["compensations"]) <= {"payment", "order"}
            assert db.recover_sagas() == SagaRecovery(), "a second recovery finds nothing"
    finally:
        db.close()


def test_a_saga_undone_by_generated_nodes_killed_at_each_boundary_ends_untouched(url, crashes):
    db = define(DataFlow(url))
    try:
        kill_at = 0
        while True:
            kill_at += 1
            stock(db)
            (item,) = run_node("InventoryItemListNode", {"filter": {"sku": SKU}})["records"]
            code = crashes.run("undo_saga", kill_at, url)
            if code != KILLED:
                assert code == 3, "the saga's last step fails"
                assert kill_at > 10, "the saga has fewer boundaries than expected"
            else:
                report = after_crash(db.recover_sagas)
                assert not report.failed and not report.in_progress
            after = state(db)
            assert {k: after[k] for k in UNTOUCHED} == UNTOUCHED, f"killed at {kill_at}: {after}"
            (back,) = run_node("InventoryItemListNode", {"filter": {"sku": SKU}})["records"]
            assert (back["id"], back["created_at"]) == (item["id"], item["created_at"])
            assert db.recover_sagas() == SagaRecovery(), "a second recovery finds nothing"
            if code != KILLED:
                break
    finally:
        db.close()
