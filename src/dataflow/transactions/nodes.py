"""The workflow nodes of the guide's "Transaction Management": TransactionScopeNode and
TransactionManagerNode."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dataflow.database.scope import RUN_SCOPE, TransactionScope
from dataflow.database.transaction import isolation_level, timeout_seconds
from dataflow.errors import TransactionError
from dataflow.models.types import Refused
from dataflow.nodes.base import Checker, DataFlowNode, check_bool, check_choice, check_count
from dataflow.transactions.saga import Settings, start_saga
from dataflow.transactions.steps import Step, parse_steps
from dataflow.transactions.twophase import start_two_phase, unsupported
from kailash.nodes.base import NodeParameter
from kailash.runtime.context import current_run

if TYPE_CHECKING:
    from dataflow.store import Store


def _params(checks: Mapping[str, Checker], required: tuple[str, ...] = ()) -> dict:
    return {name: NodeParameter(name, required=name in required) for name in checks}


class TransactionScopeNode(DataFlowNode):
    """From here to the end of the run, each database's DataFlow work is one transaction.

    Every DataFlow node that runs after it (connect it, or add it first) joins its database's
    transaction; all of them commit when the run succeeds and roll back when it fails (with
    ``rollback_on_error`` off, what the nodes before the failure did is committed, each node's
    statements running in a savepoint so that the failed node leaves nothing half-done).
    """

    checks = {
        "isolation_level": isolation_level,
        "timeout": timeout_seconds,
        "rollback_on_error": check_bool,
    }
    parameters = _params(checks)
    type_name = "TransactionScopeNode"
    servable = False  # alone in a run it has nothing to scope

    def run(
        self,
        isolation_level: str | None = None,
        timeout: float | None = None,
        rollback_on_error: bool = True,
    ) -> dict[str, Any]:
        run = current_run()
        if run is None:
            raise TransactionError(f"{self.label(self.node_id)} runs only inside a workflow run")
        taken = run.resources.get(RUN_SCOPE)
        if taken is not None:
            raise self.refuse(
                self.node_id,
                f"this run already has a transaction scope ({taken.label}); a run has one scope "
                "and it lasts to the end of the run",
            )
        scope = TransactionScope(
            level=isolation_level,
            timeout=timeout,
            rollback_on_error=rollback_on_error,
            # Committing what succeeded needs the failed node's own work undone.
            savepoints=not rollback_on_error,
            label=self.label(self.node_id),
        )
        run.resources[RUN_SCOPE] = scope
        run.exit_stack.push(scope.end)
        return {
            "isolation_level": isolation_level,
            "timeout": timeout,
            "rollback_on_error": rollback_on_error,
        }


def _check_backoff(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise Refused(f"a non-negative number of seconds, got {value!r}")
    return float(value)


def _check_data(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise Refused(
            f"a dict the steps' connections can read ('data.key'), got {type(value).__name__}"
        )
    return dict(value)


class TransactionManagerNode(DataFlowNode):
    """Runs ``steps`` as a saga (undone by compensations on failure) or a two-phase commit.

    Bound to one Store, whose database keeps the saga log and the two-phase decision log.
    """

    TYPES = ("saga", "two_phase_commit")
    # Its steps name the nodes to run, with their own parameters (tenant included).
    servable = False

    def run(
        self,
        steps: list[Step],
        transaction_type: str = "saga",
        timeout: float | None = None,
        retry_attempts: int = 0,
        retry_backoff: float = 0.1,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        settings = Settings(retry_attempts, retry_backoff, timeout)
        if transaction_type == "saga":
            return start_saga(self.store, steps, settings, data or {})
        return start_two_phase(self.store, steps, settings, data or {})

    @classmethod
    def validate_config(
        cls, node_id: str, config: Mapping[str, Any], connected: frozenset[str]
    ) -> None:
        if "transaction_type" not in config and "transaction_type" not in connected:
            config = {**config, "transaction_type": "saga"}  # the default, checked as if given
        super().validate_config(node_id, config, connected)

    @classmethod
    def check(cls, node_id: str, inputs: Mapping[str, Any], partial: bool) -> dict[str, Any]:
        out = super().check(node_id, inputs, partial)
        if "steps" in out and ("transaction_type" in out or not partial):
            kind = out.get("transaction_type", "saga")
            problem = (_saga_problem if kind == "saga" else _two_phase_problem)(
                cls.store, out["steps"]
            )
            if problem:
                raise cls.refuse(node_id, f"{kind}: {problem}", param="steps")
        return out


def _saga_problem(db: Store, steps: list[Step]) -> str | None:
    for step in steps:
        if not step.has_compensation:
            return (
                f"step '{step.name}' names no compensation. Give 'compensation': 'SomeNode' (it "
                "receives step_input and step_output, or is a generated node of the step's "
                "model: Delete for a Create step, Update for an Update step, Restore or Create "
                "for a Delete step), or 'compensation': None when the step changes nothing that "
                "needs undoing."
            )
    return None


def _two_phase_problem(db: Store, steps: list[Step]) -> str | None:
    for step in steps:
        if step.has_compensation:
            return (
                f"step '{step.name}' has a compensation, but a two-phase commit rolls back "
                "instead of compensating; remove it"
            )
        for cls in step.node_classes(db):
            owner = getattr(cls, "store", None)
            if owner is None:
                return (
                    f"step '{step.name}' runs {cls.node_type()}, which is not a DataFlow node; "
                    "only database work can be prepared and rolled back"
                )
            problem = unsupported(owner)
            if problem:
                return f"step '{step.name}' runs on {problem}"
    return None


def manager_node(db: Store) -> type[TransactionManagerNode]:
    """The TransactionManagerNode class bound to ``db``."""
    checks: dict[str, Checker] = {
        "transaction_type": check_choice(*TransactionManagerNode.TYPES),
        "steps": lambda value: parse_steps(db, value),
        "timeout": timeout_seconds,
        "retry_attempts": check_count,
        "retry_backoff": _check_backoff,
        "data": _check_data,
    }
    attrs = {
        "store": db,
        "checks": checks,
        "required_params": ("steps",),
        "parameters": _params(checks, ("steps",)),
        "type_name": "TransactionManagerNode",
        "__doc__": TransactionManagerNode.__doc__,
        "__module__": __name__,
    }
    return type("TransactionManagerNode", (TransactionManagerNode,), attrs)
