"""Sagas: steps that each commit, undone by compensations in reverse order when one fails.

The saga's state is a row of ``dataflow_sagas``, written before each step (with the step's
input) and after it (with its output). When the step only touches the log's own database, its
work and the "after" write commit in one transaction, so the log can never disagree with the
data; a step elsewhere commits first and the log just after. Compensations are logged the
same way, so each runs at most once on the log's database (at least once elsewhere: such
compensations must be idempotent). ``recover_sagas`` picks up every saga a dead process left
in flight: it finishes one whose steps all completed and compensates the others.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dataflow.database.driver_errors import wrapped
from dataflow.database.scope import TransactionScope, open_scope, step_scope
from dataflow.errors import SagaError, TransactionError, TransactionTimeoutError
from dataflow.models.types import utcnow
from dataflow.transactions import log as saga_log
from dataflow.transactions.claims import claim
from dataflow.transactions.steps import Step, cause, run_node, with_retries
from dataflow.transactions.undo import capture, undo

if TYPE_CHECKING:
    from dataflow.store import Store

log = logging.getLogger("dataflow.saga")

TERMINAL = ("completed", "compensated")
# Built once: the log is written before and after every step.
_UPDATE = saga_log.sagas.update().where(saga_log.sagas.c.id == sa.bindparam("_id"))


@dataclass(slots=True)
class SagaRecovery:
    """What ``db.recover_sagas()`` did, by saga id."""

    completed: list[str] = field(default_factory=list)
    compensated: list[str] = field(default_factory=list)
    #: Held by a live process (or another recovery): left alone.
    in_progress: list[str] = field(default_factory=list)
    #: Could not be finished now (a compensation failed again); kept for the next recovery.
    failed: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Settings:
    """How often a step is retried, how long to wait in between, when the saga gives up."""

    retry_attempts: int = 0
    retry_backoff: float = 0.1
    timeout: float | None = None

    def retries(self, step: Step) -> int:
        """The step's own ``retry_attempts``, else the saga's."""
        return self.retry_attempts if step.retry_attempts is None else step.retry_attempts


class Saga:
    """One saga's definition and state, and the log row that keeps them."""

    def __init__(
        self, db: Store, saga_id: str, steps: list[Step], settings: Settings, state: dict
    ) -> None:
        self.db = db
        self.id = saga_id
        self.steps = steps
        self.settings = settings
        self.state = state
        self.status = "running"

    # -- the log --------------------------------------------------------------------------

    def _definition(self) -> str:
        return saga_log.dumps(
            {
                "steps": [s.as_dict() for s in self.steps],
                "retry_attempts": self.settings.retry_attempts,
                "retry_backoff": self.settings.retry_backoff,
                "timeout": self.settings.timeout,
            }
        )

    def _insert(self) -> None:
        now = utcnow()
        row = {
            "id": self.id,
            "status": self.status,
            "definition": self._definition(),
            "state": saga_log.dumps(self.state),
            "created_at": now,
            "updated_at": now,
        }
        with wrapped(f"saga {self.id}"), self.db.database.begin(join=False) as conn:
            conn.execute(saga_log.sagas.insert(), row)

    def _update(self, conn: sa.Connection) -> None:
        state = saga_log.dumps(self.state)
        conn.execute(
            _UPDATE, {"_id": self.id, "status": self.status, "state": state, "updated_at": utcnow()}
        )

    def save(self, scope: TransactionScope | None = None) -> None:
        """Write the state: in ``scope``'s transaction on the log database, or on its own."""
        if scope is None:
            with wrapped(f"saga {self.id}"), self.db.database.begin(join=False) as conn:
                self._update(conn)
            return
        tx = scope.transaction_for(self.db.database, None)
        assert tx is not None
        with wrapped(f"saga {self.id}"), tx.statement() as conn:
            self._update(conn)

    @classmethod
    def load(cls, db: Store, saga_id: str) -> Saga:
        with wrapped(f"saga {saga_id}"), db.database.begin(write=False, join=False) as conn:
            row = conn.execute(
                sa.select(saga_log.sagas).where(saga_log.sagas.c.id == saga_id)
            ).one()
        definition = saga_log.loads(row.definition)
        settings = Settings(
            definition["retry_attempts"], definition["retry_backoff"], definition["timeout"]
        )
        steps = [Step.from_dict(s) for s in definition["steps"]]
        saga = cls(db, saga_id, steps, settings, saga_log.loads(row.state))
        saga.status = row.status
        return saga

    def _record(self, i: int) -> dict[str, Any]:
        return self.state["steps"][i]

    # -- running forward ------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Run every step; on failure compensate and raise SagaError."""
        self._insert()
        log.info("saga %s: started (%d steps)", self.id, len(self.steps))
        deadline = None
        if self.settings.timeout is not None:
            deadline = time.monotonic() + self.settings.timeout
        outputs: dict[str, Any] = {}
        for i, step in enumerate(self.steps):
            try:
                if deadline is not None and time.monotonic() >= deadline:
                    raise TransactionTimeoutError(
                        f"saga {self.id}: timeout of {self.settings.timeout:g} s passed before "
                        f"step '{step.name}'"
                    )
                inputs = step.inputs(outputs, self.state["data"])
                self._record(i).update(status="running", input=inputs)
                self.save()
                log.info("saga %s: step '%s' running", self.id, step.name)
                outputs[step.name] = self._run_step(i, step, inputs, deadline)
                log.info("saga %s: step '%s' done", self.id, step.name)
            except Exception as exc:
                self._fail(i, exc)
        self.status = "completed"
        self.save()
        log.info("saga %s: completed", self.id)
        return {"saga_id": self.id, "status": self.status, "results": outputs}

    def _run_step(self, i: int, step: Step, inputs: dict, deadline: float | None) -> Any:
        record = self._record(i)

        def attempt(n: int) -> Any:
            scope = TransactionScope(
                timeout=self.settings.timeout,
                deadline=deadline,
                label=f"saga {self.id} step '{step.name}'",
            )
            try:
                with step_scope(scope):
                    # Begin on the log's database first: a step that writes there commits its
                    # work and its "done" record together.
                    scope.transaction_for(self.db.database, None)
                    # What a generated compensation needs, read before the step changes it.
                    captured = capture(self.db, step, inputs) if step.undo else None
                    output = step.run(self.db, dict(inputs))
                    record.update(status="done", output=output, attempts=n + 1)
                    if step.undo:
                        record["undo"] = captured
                    self.save(scope)
                scope.commit(last=self.db.database)
            except BaseException:
                record.update(status="running", output=None)
                record.pop("undo", None)
                if not scope.ended:
                    scope.rollback()
                raise
            return output

        return with_retries(
            attempt,
            retries=self.settings.retries(step),
            backoff=self.settings.retry_backoff,
            deadline=deadline,
            what=f"saga {self.id} step '{step.name}'",
        )

    def _fail(self, i: int, exc: Exception) -> None:
        error = cause(exc)
        step = self.steps[i]
        self._record(i).update(status="failed", error=f"{type(error).__name__}: {error}")
        self.state["failed_step"] = step.name
        self.status = "compensating"
        self.save()
        log.info("saga %s: step '%s' failed; compensating", self.id, step.name)
        done = self.compensate()
        raise SagaError(
            f"saga {self.id}: step '{step.name}' failed ({type(error).__name__}: {error}); "
            f"compensated {done} completed step(s)",
            saga_id=self.id,
            step=step.name,
            status=self.status,
        ) from error

    # -- compensating ---------------------------------------------------------------------

    def compensate(self) -> int:
        """Undo the completed steps, last first; return how many compensations ran.

        A step left "running" by a dead process is undone too unless it was atomic with the
        log (then its transaction never committed); its compensation gets ``step_output=None``.
        """
        ran = 0
        for i in reversed(range(len(self.steps))):
            record = self._record(i)
            if record["status"] == "running" and record["atomic"]:
                record["status"] = "failed"
            if record["status"] not in ("done", "running"):
                continue
            if self.steps[i].compensation is None:
                record["status"] = "kept"  # the step said it changes nothing to undo
                continue
            self._compensate_step(i)
            ran += 1
        self.status = "compensated"
        self.save()
        log.info("saga %s: compensated", self.id)
        return ran

    def _compensate_step(self, i: int) -> None:
        step = self.steps[i]
        record = self._record(i)
        before = record["status"]

        def attempt(n: int) -> None:
            scope = TransactionScope(label=f"saga {self.id} compensation of '{step.name}'")
            try:
                with step_scope(scope):
                    scope.transaction_for(self.db.database, None)
                    if step.undo:
                        undo(self.db, step, record)
                    else:
                        inputs = {"step_input": record["input"], "step_output": record["output"]}
                        run_node(self.db.node_type(str(step.compensation)), step.name, inputs)
                    record["status"] = "compensated"
                    self.save(scope)
                scope.commit(last=self.db.database)
            except BaseException:
                record["status"] = before
                if not scope.ended:
                    scope.rollback()
                raise

        try:
            with_retries(
                attempt,
                retries=self.settings.retry_attempts,
                backoff=self.settings.retry_backoff,
                deadline=None,
                what=f"saga {self.id} compensation of '{step.name}'",
            )
        except Exception as exc:
            error = cause(exc)
            record["error"] = f"compensation failed: {type(error).__name__}: {error}"
            self.save()
            raise SagaError(
                f"saga {self.id}: the compensation of step '{step.name}' failed "
                f"({type(error).__name__}: {error}); the saga stays 'compensating' and "
                "db.recover_sagas() will retry it",
                saga_id=self.id,
                step=step.name,
                status="compensating",
            ) from error
        log.info("saga %s: step '%s' compensated", self.id, step.name)

    # -- recovery -------------------------------------------------------------------------

    def recover(self) -> str:
        """Finish a saga left in flight: complete it if every step is done, else compensate."""
        if self.status == "running" and all(r["status"] == "done" for r in self.state["steps"]):
            self.status = "completed"
            self.save()
            log.info("saga %s: completed by recovery", self.id)
            return "completed"
        if self.status == "running":
            self.status = "compensating"
            self.save()
        with self._bindings():
            self.compensate()
        return "compensated"

    @contextmanager
    def _bindings(self) -> Iterator[None]:
        """Act again for the tenant and actor each instance had bound when the saga started."""
        with ExitStack() as stack:
            for db, bound in zip(
                involved(self.db, self.steps), self.state.get("bound", []), strict=False
            ):
                if bound["tenant"] is not None:
                    stack.enter_context(db.tenant(bound["tenant"]))
                if bound["actor"] is not None:
                    stack.enter_context(db.actor(bound["actor"]))
            yield


def start_saga(
    db: Store, steps: list[Step], settings: Settings, data: dict[str, Any]
) -> dict[str, Any]:
    """Run a saga under a claim, so recovery leaves it alone while this process lives."""
    refuse_inside_transaction([db, *involved(db, steps)], "a saga")
    saga_log.ensure_tables(db.database)
    # Each step begins on the log's database before its nodes run; their tables must exist.
    db.create_pending_tables()
    saga_id = uuid.uuid4().hex
    state = {
        "data": data,
        "steps": [_initial_record(db, s) for s in steps],
        "failed_step": None,
        # Who the saga acts for, per instance its steps use: recovery compensates as them.
        "bound": [
            {"tenant": d.bound_tenant.get(), "actor": d.bound_actor.get()}
            for d in involved(db, steps)
        ],
    }
    saga = Saga(db, saga_id, steps, settings, state)
    with claim(db.database, f"saga:{saga_id}") as held:
        try:
            return saga.run()
        finally:
            if saga.status in TERMINAL:
                held.finished()


def _initial_record(db: Store, step: Step) -> dict[str, Any]:
    # Atomic: every node the step runs works on the log's database, in the step's transaction.
    atomic = all(getattr(cls, "store", None) is db for cls in step.node_classes(db))
    return {"status": "pending", "input": None, "output": None, "attempts": 0, "atomic": atomic}


def recover_sagas(db: Store) -> SagaRecovery:
    """Finish or compensate every saga that no live process holds."""
    refuse_inside_transaction([db], "saga recovery")
    saga_log.ensure_tables(db.database)
    db.create_pending_tables()  # compensations begin on the log's database, as steps do
    report = SagaRecovery()
    table = saga_log.sagas
    with wrapped("saga recovery"), db.database.begin(write=False, join=False) as conn:
        ids = list(
            conn.execute(
                sa.select(table.c.id)
                .where(table.c.status.in_(("running", "compensating")))
                .order_by(table.c.created_at)
            ).scalars()
        )
    for saga_id in ids:
        with claim(db.database, f"saga:{saga_id}") as held:
            if not held:
                report.in_progress.append(saga_id)
                continue
            saga = Saga.load(db, saga_id)  # again: it may have ended before we claimed it
            if saga.status in TERMINAL:
                held.finished()
                continue
            try:
                outcome = saga.recover()
            except SagaError as exc:
                report.failed[saga_id] = str(exc)
                continue
            held.finished()
            getattr(report, outcome).append(saga_id)
    return report


def involved(db: Store, steps: list[Step]) -> list[Store]:
    """The DataFlow instances whose nodes the steps run, in order of first use."""
    found: dict[int, Store] = {}
    for step in steps:
        for cls in step.node_classes(db):
            other = getattr(cls, "store", None)
            if other is not None:
                found.setdefault(id(other), other)
    return list(found.values())


def refuse_inside_transaction(dbs: list[Store], what: str) -> None:
    """Sagas and two-phase commits commit on their own; an enclosing transaction would undo that."""
    inside = open_scope()
    if inside is None and any(d.database.bound.get() is not None for d in dbs):
        inside = "a db.transaction() block"
    if inside:
        raise TransactionError(
            f"{what} cannot run inside {inside}: its steps commit on their own, which the "
            "enclosing transaction would undo. Run it outside the transaction scope."
        )
