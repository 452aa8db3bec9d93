"""DataFlow: the facade a user creates, decorates models with, and hands to workflows."""

from __future__ import annotations

import dataclasses
import logging
import weakref
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from dataflow.config import DataFlowConfig, resolve_url
from dataflow.errors import ConfigurationError
from dataflow.features.options import Defaults, model_spec
from dataflow.monitoring import pool_state
from dataflow.nodes.base import DataFlowNode
from dataflow.nodes.generated import generate_nodes
from dataflow.store import Store
from dataflow.transactions import SagaRecovery, TwoPhaseRecovery
from dataflow.transactions.block import transaction_block
from dataflow.transactions.nodes import TransactionScopeNode, manager_node
from dataflow.transactions.saga import recover_sagas
from dataflow.transactions.twophase import recover_two_phase_commits
from kailash.nodes.base import Node
from kailash.nodes.registry import NodeRegistry, default_registry
from kailash.workflow.builder import WorkflowBuilder
from kailash.workflow.graph import Workflow

if TYPE_CHECKING:
    import sqlalchemy as sa

    from dataflow.config import DatabaseTarget
    from dataflow.database import Database
    from dataflow.database.transaction import Transaction
    from dataflow.features.audit import AuditLog
    from dataflow.features.context import Binding
    from dataflow.models.relations import Relation
    from dataflow.models.spec import ModelSpec
    from dataflow.statements import ModelStatements
    from kailash.servers.gateway.protocol import ModelInfo, Problem

log = logging.getLogger("dataflow")
_announced_default = False
C = TypeVar("C", bound=type)


class DataFlow:
    """A database plus the models defined on it; each model becomes a family of nodes.

    ``DataFlow()`` uses ``DATABASE_URL`` or, without it, ``./dataflow.db`` (SQLite, WAL).
    ``DataFlow(":memory:")`` is one in-memory SQLite database shared by every node.
    ``name`` (default: the server's host, or the SQLite file's stem) is what a node's
    ``database`` parameter gives where two instances in one process define the same node type.
    The instance's node types are registered while it lives, until ``close()``.
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        registry: NodeRegistry | None = None,
        **options: Any,
    ) -> None:
        if database_url is not None and "database_url" in options:
            raise ConfigurationError("database_url given twice (positionally and by keyword)")
        if database_url is not None:
            options["database_url"] = database_url
        config = DataFlowConfig.from_options(options)
        target = resolve_url(config.database_url)
        if target.from_default:
            _announce_default(f"./{target.url.database}")
        self.store = Store(config.name or target.name, config, target, registry or default_registry)
        self._sagas_recovered = False
        self._defaults = Defaults(
            multi_tenant=config.multi_tenant,
            audit_log=config.audit_logging,
            strict_tenancy=config.tenant_isolation == "strict",
        )
        self.registry.register(TransactionScopeNode)
        self.store.add_node(manager_node(self.store))
        # The instance's node types leave the registry when it is closed or goes away.
        weakref.finalize(self, self.store.forget_nodes)

    def __repr__(self) -> str:
        return f"<DataFlow {self.name!r} {self.target.safe_url} models={list(self.models)}>"

    # -- what the store holds -------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.store.name

    @property
    def config(self) -> DataFlowConfig:
        return self.store.config

    @property
    def target(self) -> DatabaseTarget:
        return self.store.target

    @property
    def dialect(self) -> str:
        """The backend's name: ``"sqlite"``, ``"postgresql"`` or ``"mysql"``."""
        return self.store.dialect.name

    @property
    def database(self) -> Database:
        return self.store.database

    @property
    def registry(self) -> NodeRegistry:
        return self.store.registry

    @property
    def metadata(self) -> sa.MetaData:
        return self.store.metadata

    @property
    def bound_tenant(self) -> Binding:
        return self.store.bound_tenant

    @property
    def bound_actor(self) -> Binding:
        return self.store.bound_actor

    # -- models ---------------------------------------------------------------------------

    def model(self, cls: C) -> C:
        """Class decorator: the class's annotations become a table and a family of nodes."""
        spec = model_spec(cls, self._defaults)
        self.store.add_model(spec)
        for node_cls in generate_nodes(self.store, spec):
            self.store.add_node(node_cls)
        cls.__dataflow__model__ = spec  # type: ignore[attr-defined]
        return cls

    @property
    def audit_log(self) -> AuditLog:
        """The audit table this instance's audited models write to (``dataflow_audit_log``)."""
        return self.store.audit_log

    # -- who the work is for --------------------------------------------------------------

    def tenant(self, tenant_id: str) -> AbstractContextManager[str]:
        """``with db.tenant("t1"):`` — the block's operations on this instance act for ``t1``.

        It applies to every node run inside the block (by either runtime) that is not given a
        tenant of its own; a node given another tenant is refused. Each thread and asyncio task
        has its own binding.
        """
        return self.store.tenant(tenant_id)

    def actor(self, actor: str) -> AbstractContextManager[str]:
        """``with db.actor("alice"):`` — the audit log names ``alice`` for the block's writes."""
        return self.store.actor(actor)

    def subscribe_changes(self, listener: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call ``listener`` with each committed write's change; returns the unsubscribe.

        A change is ``{"model", "action", "ids", "count", "tenant_id", "at"}``; see
        ``dataflow.database.change_feed``. Listeners run on the writing thread and must not
        block.
        """
        return self.database.changes.subscribe(listener)

    @property
    def models(self) -> Mapping[str, ModelSpec]:
        return self.store.models

    def get_model(self, name: str) -> ModelSpec:
        return self.store.get_model(name)

    def relations(self, model: str) -> dict[str, Relation]:
        """The relations of ``model`` whose target models are defined, by name."""
        return self.store.relations(model)

    @property
    def nodes(self) -> Mapping[str, type[Node]]:
        """Node types this instance registered, by name."""
        return self.store.nodes

    def register_node(self, node_cls: type[Node], name: str | None = None) -> str:
        """Register a custom node class on this DataFlow, in its namespace, under ``name``."""
        if isinstance(node_cls, type) and issubclass(node_cls, DataFlowNode):
            node_cls.store = self.store
        return self.store.add_node(node_cls, name)

    # -- serving (kailash.servers.gateway.DataSource) --------------------------------------

    def describe_models(self) -> list[ModelInfo]:
        """The models as the gateway and Nexus serve them: fields, types, operations."""
        from dataflow.serving import describe_model

        return [describe_model(spec, self.nodes) for spec in self.models.values()]

    def explain_error(self, error: BaseException) -> Problem | None:
        """What an error of this instance's nodes means to an API caller."""
        from dataflow.serving import explain_error

        return explain_error(error)

    @property
    def tenant_id_header(self) -> str:
        return self.config.tenant_id_header

    # -- schema ---------------------------------------------------------------------------

    def create_tables(self) -> list[str]:
        """Create or extend the tables of every model defined so far; return what was done.

        With ``recover_sagas_on_start``, the first call also finishes or compensates the sagas
        a previous process left in flight (see ``recover_sagas``).
        """
        done = self.store.create_pending_tables()
        if self.config.recover_sagas_on_start and not self._sagas_recovered:
            self._sagas_recovered = True
            report = self.recover_sagas()
            for saga_id, reason in report.failed.items():
                log.warning("DataFlow: saga %s is still in flight: %s", saga_id, reason)
        return done

    def create_pending_tables(self) -> list[str]:
        """Create or extend the tables of the models defined since the last call."""
        return self.store.create_pending_tables()

    def statements(self, model: str) -> ModelStatements:
        """The statements of ``model`` (tables are created on first use)."""
        return self.store.statements(model)

    def connection(
        self, label: str = "raw SQL", write: bool = True
    ) -> AbstractContextManager[sa.Connection]:
        """A SQLAlchemy connection in the open transaction (``db.transaction()``, a scope, a
        saga step) or in one of its own that commits when the block ends; driver errors
        surface as DataFlow errors naming ``label``."""
        return self.store.connection(label, write)

    # -- transactions ---------------------------------------------------------------------

    def transaction(
        self, isolation_level: str | None = None, timeout: float | None = None
    ) -> AbstractContextManager[Transaction]:
        """``with db.transaction():`` makes the block's DataFlow work one transaction.

        Every node run inside the block (by either runtime) joins it; it commits when the block
        ends and rolls back if the block raises. A nested block is a savepoint. ``timeout``
        (seconds) rolls it back when it runs longer; ``isolation_level`` is one of
        READ_UNCOMMITTED, READ_COMMITTED, REPEATABLE_READ, SERIALIZABLE.
        """
        return transaction_block(self.store, isolation_level, timeout)

    def register_workflow(self, name: str, workflow: Workflow | WorkflowBuilder) -> None:
        """Name a workflow so saga and two-phase-commit steps can run it (``"workflow": name``)."""
        if isinstance(workflow, WorkflowBuilder):
            workflow = workflow.build(self.registry)
        if not isinstance(workflow, Workflow) or not isinstance(name, str) or not name:
            raise ConfigurationError(
                "register_workflow(name, workflow) takes a non-empty name and a WorkflowBuilder "
                f"or built Workflow, got {name!r} and {type(workflow).__name__}"
            )
        self.store.add_workflow(name, workflow)

    @property
    def workflows(self) -> Mapping[str, Workflow]:
        return self.store.workflows

    def recover_sagas(self) -> SagaRecovery:
        """Finish or compensate every saga a dead process left in flight; safe to run anywhere.

        Sagas a live process is running are left alone (``in_progress``); two recoveries at
        once never work on the same saga.
        """
        return recover_sagas(self.store)

    def recover_two_phase_commits(self, *participants: DataFlow) -> TwoPhaseRecovery:
        """Commit or roll back the prepared transactions of two-phase commits a dead process left.

        Call it on the DataFlow whose TransactionManagerNode coordinated them, passing the other
        participants' DataFlow instances.
        """
        return recover_two_phase_commits(self.store, [p.store for p in participants])

    def metrics(self) -> dict[str, Any]:
        """The connection pool's state and, with ``monitoring=True``, statement timings."""
        out: dict[str, Any] = {"pool": pool_state(self.database.engine)}
        monitor = self.database.monitor
        if monitor is not None:
            stats = monitor.stats()
            out["queries"] = {**dataclasses.asdict(stats), "mean_ms": stats.mean_ms}
        return out

    def close(self) -> None:
        """Close every pooled connection and take this instance's node types off the registry.

        Workflows built before keep working; a name the instance defined resolves to it no
        more, so another DataFlow may define it without ``database``.
        """
        self.store.forget_nodes()
        self.database.dispose()

    def __enter__(self) -> DataFlow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _announce_default(path: str) -> None:
    global _announced_default
    if not _announced_default:
        _announced_default = True
        log.info("DataFlow: DATABASE_URL is not set; using SQLite at %s (WAL mode)", path)
