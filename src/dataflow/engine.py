"""DataFlow: the facade a user creates, decorates models with, and hands to workflows."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dataflow.config import DataFlowConfig, resolve_url
from dataflow.database import Database
from dataflow.dberrors import wrapped
from dataflow.errors import ConfigurationError, ModelDefinitionError
from dataflow.features.audit import Audit, AuditLog
from dataflow.features.base import Scope
from dataflow.features.catalog import Defaults
from dataflow.features.context import Binding, check_actor
from dataflow.features.tenancy import Tenancy, bind_tenant, check_tenant
from dataflow.models.parse import parse_model
from dataflow.models.relations import Relation, resolve_relations
from dataflow.models.spec import ModelSpec
from dataflow.monitoring import pool_state
from dataflow.records import Records
from dataflow.schema.sync import sync, sync_table
from dataflow.schema.tables import build_table, link_foreign_key
from dataflow.transactions import SagaRecovery, Transaction, TwoPhaseRecovery
from dataflow.transactions.nodes import TransactionScopeNode, manager_node
from dataflow.transactions.saga import recover_sagas
from dataflow.transactions.scope import transaction_block
from dataflow.transactions.twophase import recover_two_phase_commits
from kailash.nodes.base import Node
from kailash.nodes.registry import NodeRegistry, default_registry
from kailash.workflow.builder import WorkflowBuilder
from kailash.workflow.graph import Workflow

if TYPE_CHECKING:
    from kailash.servers.gateway.protocol import ModelInfo, Problem

log = logging.getLogger("dataflow")
_announced_default = False
C = TypeVar("C", bound=type)


class DataFlow:
    """A database plus the models defined on it; each model becomes a family of nodes.

    ``DataFlow()`` uses ``DATABASE_URL`` or, without it, ``./dataflow.db`` (SQLite, WAL).
    ``DataFlow(":memory:")`` is one in-memory SQLite database shared by every node.
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
        self.config = DataFlowConfig.from_options(options)
        self.target = resolve_url(self.config.database_url)
        if self.target.from_default:
            _announce_default(f"./{self.target.url.database}")
        self.database = Database(self.target, self.config)
        self.dialect = self.target.dialect
        self.registry = registry or default_registry
        self.metadata = sa.MetaData()
        self._models: dict[str, ModelSpec] = {}
        self._records: dict[str, Records] = {}
        self._nodes: dict[str, type[Node]] = {}
        self._pending: set[str] = set()
        self._schema_lock = threading.Lock()
        self._workflows: dict[str, Workflow] = {}
        self._sagas_recovered = False
        self._defaults = Defaults(
            multi_tenant=self.config.multi_tenant,
            audit_log=self.config.audit_logging,
            strict_tenancy=self.config.tenant_isolation == "strict",
        )
        #: The tenant and actor bound with ``db.tenant()`` and ``db.actor()``.
        self.bound_tenant = Binding(f"dataflow_tenant_{id(self)}", check_tenant)
        self.bound_actor = Binding(f"dataflow_actor_{id(self)}", check_actor)
        self._audit_log: AuditLog | None = None
        self._audit_synced = False
        # PostgreSQL keeps tenant tables behind row-level security once a model is multi-tenant.
        self._row_security = False
        self.registry.register(TransactionScopeNode)
        self._nodes["TransactionScopeNode"] = TransactionScopeNode
        self.register_node(manager_node(self))

    def __repr__(self) -> str:
        return f"<DataFlow {self.target.safe_url} models={list(self._models)}>"

    # -- models ---------------------------------------------------------------------------

    def model(self, cls: C) -> C:
        """Class decorator: the class's annotations become a table and a family of nodes."""
        from dataflow.nodes.generated import generate_nodes

        spec = parse_model(cls, self._defaults)
        for other in self._models.values():
            if other.table_name == spec.table_name and other.name != spec.name:
                raise ModelDefinitionError(
                    f"{spec.name}: table '{spec.table_name}' already belongs to model "
                    f"{other.name}; set __tablename__ to another name"
                )
        models = {**self._models, spec.name: spec}
        links = [(m, r) for m in models.values() for r in resolve_relations(m, models).values()]
        build_table(spec, self.metadata)
        audit = spec.feature(Audit)
        if audit is not None:
            audit.attach(self.audit_log, spec)
        if spec.feature(Tenancy) is not None and self.dialect == "postgresql":
            self._row_security = True
        self._models[spec.name] = spec
        for owner, relation in links:
            if link_foreign_key(owner, relation.field, models[relation.model]):
                self._pending.add(owner.name)
        self._records.pop(spec.name, None)
        for node_cls in generate_nodes(self, spec):
            self.registry.register(node_cls, replace=True)
            self._nodes[node_cls.type_name] = node_cls
        self._pending.add(spec.name)
        cls.__dataflow__model__ = spec  # type: ignore[attr-defined]
        return cls

    @property
    def audit_log(self) -> AuditLog:
        """The audit table this instance's audited models write to (``dataflow_audit_log``)."""
        if self._audit_log is None:
            self._audit_log = AuditLog(self.database.engine.dialect)
        return self._audit_log

    # -- who the work is for --------------------------------------------------------------

    def tenant(self, tenant_id: str) -> AbstractContextManager[str]:
        """``with db.tenant("t1"):`` — the block's operations on this instance act for ``t1``.

        It applies to every node run inside the block (by either runtime) that is not given a
        tenant of its own; a node given another tenant is refused. Each thread and asyncio task
        has its own binding.
        """
        return self.bound_tenant.bind(tenant_id, "db.tenant()")

    def actor(self, actor: str) -> AbstractContextManager[str]:
        """``with db.actor("alice"):`` — the audit log names ``alice`` for the block's writes."""
        return self.bound_actor.bind(actor, "db.actor()")

    def subscribe_changes(self, listener: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call ``listener`` with each committed write's change; returns the unsubscribe.

        A change is ``{"model", "action", "ids", "count", "tenant_id", "at"}``; see
        ``dataflow.changes``. Listeners run on the writing thread and must not block.
        """
        return self.database.changes.subscribe(listener)

    @property
    def models(self) -> Mapping[str, ModelSpec]:
        return MappingProxyType(self._models)

    def get_model(self, name: str) -> ModelSpec:
        try:
            return self._models[name]
        except KeyError:
            known = ", ".join(self._models) or "(none yet)"
            raise ModelDefinitionError(
                f"no model '{name}' on this DataFlow; models: {known}"
            ) from None

    def relations(self, model: str) -> dict[str, Relation]:
        """The relations of ``model`` whose target models are defined, by name."""
        return resolve_relations(self.get_model(model), self._models)

    @property
    def nodes(self) -> Mapping[str, type[Node]]:
        """Node types this instance registered, by name."""
        return MappingProxyType(self._nodes)

    def register_node(self, node_cls: type[Node], name: str | None = None) -> str:
        """Register a custom node class (bound to this DataFlow) under ``name``."""
        from dataflow.nodes.base import DataFlowNode

        if isinstance(node_cls, type) and issubclass(node_cls, DataFlowNode):
            node_cls.dataflow = self
        key = self.registry.register(node_cls, name, replace=True)
        self._nodes[key] = node_cls
        return key

    # -- serving (kailash.servers.gateway.DataSource) --------------------------------------

    def describe_models(self) -> list[ModelInfo]:
        """The models as the gateway and Nexus serve them: fields, types, operations."""
        from dataflow.serving import describe_model

        return [describe_model(spec, self._nodes) for spec in self._models.values()]

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
        done = self.create_pending_tables()
        if self.config.recover_sagas_on_start and not self._sagas_recovered:
            self._sagas_recovered = True
            report = self.recover_sagas()
            for saga_id, reason in report.failed.items():
                log.warning("DataFlow: saga %s is still in flight: %s", saga_id, reason)
        return done

    def create_pending_tables(self) -> list[str]:
        """Create or extend the tables of the models defined since the last call."""
        if not self._pending:
            return []
        done: list[str] = []
        with self._schema_lock:
            pending = [self._models[n] for n in self.metadata_order() if n in self._pending]
            if not pending:
                return done
            with self.database.connect() as conn, wrapped("creating tables"):
                if not self._audit_synced and any(s.feature(Audit) for s in pending):
                    with conn.begin():
                        log_table = self.audit_log.table
                        done.extend(sync(conn, log_table, "the audit log"))
                        done.extend(self.audit_log.sync(conn))
                    self._audit_synced = True
                for spec in pending:
                    with conn.begin():
                        done.extend(sync_table(conn, spec))
                    self._pending.discard(spec.name)
        for line in done:
            log.info("DataFlow: %s", line)
        return done

    def metadata_order(self) -> list[str]:
        """Model names in dependency order (referenced tables first)."""
        by_table = {spec.table_name: name for name, spec in self._models.items()}
        return [by_table[t.name] for t in self.metadata.sorted_tables if t.name in by_table]

    # -- statements -----------------------------------------------------------------------

    def records(self, model: str) -> Records:
        """The statement builder for ``model`` (tables are created on first use)."""
        if self._pending:
            self.create_pending_tables()
        found = self._records.get(model)
        if found is None:
            found = self._records[model] = Records(self.get_model(model), self.dialect)
        return found

    @contextmanager
    def connection(
        self, label: str, write: bool = True, scope: Scope | None = None
    ) -> Iterator[Connection]:
        """A transactional connection whose driver errors surface as DataFlow errors.

        With ``scope``, the transaction acts for its tenant: on PostgreSQL the row-level
        security policies see it (``set_config('dataflow.tenant_id', ..., true)``).
        """
        with wrapped(label), self.database.begin(write) as conn:
            if scope is not None and self._row_security:
                every = scope.tenant_id is None and self.config.tenant_isolation == "permissive"
                bind_tenant(conn, scope.tenant_id, every)
            yield conn

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
        return transaction_block(self, isolation_level, timeout)

    def register_workflow(self, name: str, workflow: Workflow | WorkflowBuilder) -> None:
        """Name a workflow so saga and two-phase-commit steps can run it (``"workflow": name``)."""
        if isinstance(workflow, WorkflowBuilder):
            workflow = workflow.build(self.registry)
        if not isinstance(workflow, Workflow) or not isinstance(name, str) or not name:
            raise ConfigurationError(
                "register_workflow(name, workflow) takes a non-empty name and a WorkflowBuilder "
                f"or built Workflow, got {name!r} and {type(workflow).__name__}"
            )
        self._workflows[name] = workflow

    @property
    def workflows(self) -> Mapping[str, Workflow]:
        return MappingProxyType(self._workflows)

    def recover_sagas(self) -> SagaRecovery:
        """Finish or compensate every saga a dead process left in flight; safe to run anywhere.

        Sagas a live process is running are left alone (``in_progress``); two recoveries at
        once never work on the same saga.
        """
        return recover_sagas(self)

    def recover_two_phase_commits(self, *participants: DataFlow) -> TwoPhaseRecovery:
        """Commit or roll back the prepared transactions of two-phase commits a dead process left.

        Call it on the DataFlow whose TransactionManagerNode coordinated them, passing the other
        participants' DataFlow instances.
        """
        return recover_two_phase_commits(self, list(participants))

    def metrics(self) -> dict[str, Any]:
        """The connection pool's state and, with ``monitoring=True``, statement timings."""
        out: dict[str, Any] = {"pool": pool_state(self.database.engine)}
        monitor = self.database.monitor
        if monitor is not None:
            stats = monitor.stats()
            out["queries"] = {**dataclasses.asdict(stats), "mean_ms": stats.mean_ms}
        return out

    def close(self) -> None:
        """Close every pooled connection."""
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
