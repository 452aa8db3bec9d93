"""A small shop for the saga tests: payments, orders and stock, with the step and compensation
nodes the guide's "Transaction Management" block names.

The crash tests import it in a child process too, so both sides define the same node types.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from dataflow import DataFlow
from dataflow.nodes import DataFlowNode
from dataflow.nodes.base import passthrough
from kailash import NodeParameter, WorkflowBuilder
from tests.dataflow.conftest import run_node

ORDER = "order-1"
SKU = "widget"
STOCK = 10


class ShopNode(DataFlowNode):
    """A custom DataFlow node taking the parameters named in ``names``, values unchecked."""

    names: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.checks = {n: passthrough for n in cls.names}
        cls.parameters = {n: NodeParameter(n) for n in cls.names}


class Compensation(ShopNode):
    """Undoes a step; every run leaves a row in compensation_runs, in the same transaction."""

    names = ("step_input", "step_output")
    step = ""

    def run(self, step_input: dict, step_output: dict | None) -> dict[str, Any]:
        self.undo(step_input, step_output)
        run_node("CompensationRunCreateNode", {"step": self.step})
        return {"undone": self.step}

    @abstractmethod
    def undo(self, step_input: dict, step_output: dict | None) -> None:
        """Undo what the step did."""


class PaymentRollbackNode(Compensation):
    step = "payment"

    def undo(self, step_input: dict, step_output: dict | None) -> None:
        run_node("PaymentDeleteNode", {"id": step_output["id"]})  # type: ignore[index]


def _order() -> dict[str, Any]:
    return run_node("PurchaseOrderListNode", {"filter": {"ref": ORDER}})["records"][0]


def _item(sku: str) -> dict[str, Any]:
    found = run_node("InventoryItemListNode", {"filter": {"sku": sku}})["records"]
    if not found:
        raise LookupError(f"no stock item {sku}")
    return found[0]


class OrderUpdateNode(ShopNode):
    """Marks the shop's order paid."""

    def run(self) -> dict[str, Any]:
        return run_node("PurchaseOrderUpdateNode", {"id": _order()["id"], "status": "paid"})


class OrderRevertNode(Compensation):
    step = "order"

    def undo(self, step_input: dict, step_output: dict | None) -> None:
        run_node("PurchaseOrderUpdateNode", {"id": _order()["id"], "status": "pending"})


class InventoryUpdateNode(ShopNode):
    """Takes ``quantity`` items of ``sku`` out of stock; refuses to go below zero."""

    names = ("sku", "quantity")

    def run(self, sku: str = SKU, quantity: int = 1) -> dict[str, Any]:
        item = _item(sku)
        if item["stock"] < quantity:
            raise ValueError(f"only {item['stock']} {sku} in stock")
        return run_node(
            "InventoryItemUpdateNode", {"id": item["id"], "stock": item["stock"] - quantity}
        )


class InventoryRestoreNode(Compensation):
    step = "inventory"

    def undo(self, step_input: dict, step_output: dict | None) -> None:
        item = _item(step_input.get("sku", SKU))
        quantity = step_input.get("quantity", 1)
        run_node("InventoryItemUpdateNode", {"id": item["id"], "stock": item["stock"] + quantity})


NODES = (
    PaymentRollbackNode,
    OrderUpdateNode,
    OrderRevertNode,
    InventoryUpdateNode,
    InventoryRestoreNode,
)


def define(db: DataFlow) -> DataFlow:
    """The shop's models and nodes on ``db``."""

    @db.model
    class Payment:
        order_ref: str = ORDER
        amount: float = 10.0
        status: str = "captured"

    @db.model
    class PurchaseOrder:
        ref: str
        status: str = "pending"

    @db.model
    class InventoryItem:
        sku: str
        stock: int = 0

    @db.model
    class CompensationRun:
        step: str

    for cls in NODES:
        db.register_node(type(cls.__name__, (cls,), {}))
    return db


def stock(db: DataFlow, stock: int = STOCK) -> None:
    """Empty the shop, then one pending order and ``stock`` widgets."""
    for model in ("Payment", "PurchaseOrder", "InventoryItem", "CompensationRun"):
        run_node(f"{model}BulkDeleteNode", {"confirm_all": True})
    run_node("PurchaseOrderCreateNode", {"ref": ORDER})
    run_node("InventoryItemCreateNode", {"sku": SKU, "stock": stock})


def state(db: DataFlow) -> dict[str, Any]:
    """What the saga changed: payments, the order's status, stock, compensations run."""
    runs = [r["step"] for r in run_node("CompensationRunListNode")["records"]]
    return {
        "payments": run_node("PaymentCountNode")["count"],
        "order": _order()["status"],
        "stock": _item(SKU)["stock"],
        "compensations": sorted(runs),
    }


APPLIED = {"payments": 1, "order": "paid", "stock": STOCK - 1}
UNTOUCHED = {"payments": 0, "order": "pending", "stock": STOCK}

GUIDE_STEPS = [
    {"node": "PaymentCreateNode", "compensation": "PaymentRollbackNode"},
    {"node": "OrderUpdateNode", "compensation": "OrderRevertNode"},
    {"node": "InventoryUpdateNode", "compensation": "InventoryRestoreNode"},
]


def saga_workflow(**params: Any) -> WorkflowBuilder:
    """The guide's saga, with ``params`` added to the TransactionManagerNode's."""
    builder = WorkflowBuilder()
    builder.add_node(
        "TransactionManagerNode",
        "payment_flow",
        {"transaction_type": "saga", "steps": GUIDE_STEPS, **params},
    )
    return builder


def undo_saga_workflow() -> WorkflowBuilder:
    """A saga of generated nodes undone by generated nodes; its last step always fails."""
    order, item = _order()["id"], _item(SKU)["id"]
    steps = [
        {"node": "PaymentCreateNode", "compensation": "PaymentDeleteNode"},
        {
            "node": "PurchaseOrderUpdateNode",
            "params": {"id": order, "status": "paid"},
            "compensation": "PurchaseOrderUpdateNode",
        },
        {
            "node": "InventoryItemDeleteNode",
            "params": {"id": item},
            "compensation": "InventoryItemCreateNode",
        },
        {"node": "InventoryUpdateNode", "params": {"sku": "gone"}, "compensation": None},
    ]
    builder = WorkflowBuilder()
    builder.add_node("TransactionManagerNode", "undo_flow", {"steps": steps})
    return builder
