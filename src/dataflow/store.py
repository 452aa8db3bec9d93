"""Store: everything one DataFlow instance owns below its facade.

The models and their tables, each model's statements, the database and its connections, the
tables still to create, the node types the instance defined (in its own namespace of the node
registry), the workflows sagas may run, and whom the work is for (``db.tenant()``,
``db.actor()``). Nodes, bulk writes, transactions and the filter compiler take the store;
nothing below the facade holds the ``DataFlow`` itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING

import sqlalchemy as sa

from dataflow.config import DatabaseTarget, DataFlowConfig
from dataflow.database import Database
from dataflow.database.driver_errors import wrapped
from dataflow.errors import ConfigurationError
from dataflow.features.audit import Audit, AuditLog
from dataflow.features.context import Binding, check_actor
from dataflow.features.tenancy import Tenancy, bind_tenant, check_tenant
from dataflow.models.catalog import ModelCatalog
from dataflow.models.relations import Relation
from dataflow.models.spec import ModelSpec
from dataflow.schema.sync import sync, sync_table
from dataflow.schema.tables import build_table, link_foreign_key
from dataflow.statements import ModelStatements
from kailash.nodes.base import Node
from kailash.nodes.registry import NodeRegistry
from kailash.workflow.graph import Workflow

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from dataflow.features.base import Scope

log = logging.getLogger("dataflow")


class Store:
    """One DataFlow instance's models, statements, database, node types and workflows."""

    def __init__(
        self, name: str, config: DataFlowConfig, target: DatabaseTarget, registry: NodeRegistry
    ) -> None:
        #: The instance's name: its namespace of node types, named by a node's ``database``.
        self.name = name
        self.config = config
        self.target = target
        self.database = Database(target, config)
        self.dialect = self.database.dialect
        self.registry = registry
        self.metadata = sa.MetaData()
        self.models = ModelCatalog()
        self._statements: dict[str, ModelStatements] = {}
        self._nodes: dict[str, type[Node]] = {}
        self._workflows: dict[str, Workflow] = {}
        self._pending: set[str] = set()
        self._schema_lock = threading.Lock()
        #: The tenant and actor bound with ``db.tenant()`` and ``db.actor()``.
        self.bound_tenant = Binding(f"dataflow_tenant_{id(self)}", check_tenant)
        self.bound_actor = Binding(f"dataflow_actor_{id(self)}", check_actor)
        self._audit_log: AuditLog | None = None
        self._audit_synced = False
        # PostgreSQL keeps tenant tables behind row-level security once a model is multi-tenant.
        self._row_security = False

    def __repr__(self) -> str:
        return f"<Store {self.name!r} {self.target.safe_url}>"

    # -- models ---------------------------------------------------------------------------

    def add_model(self, spec: ModelSpec) -> None:
        """Give ``spec`` its table and foreign keys; the table is created on first use."""
        links = self.models.links(spec)
        self.models.add(spec)
        build_table(spec, self.metadata)
        audit = spec.feature(Audit)
        if audit is not None:
            audit.attach(self.audit_log, spec)
        if spec.feature(Tenancy) is not None and self.dialect.row_security:
            self._row_security = True
        for owner, relation in links:
            if link_foreign_key(owner, relation.field, self.models[relation.model]):
                self._pending.add(owner.name)
        self._pending.add(spec.name)

    def get_model(self, name: str) -> ModelSpec:
        return self.models.get_model(name)

    def relations(self, model: str) -> dict[str, Relation]:
        """The relations of ``model`` whose target models are defined, by name."""
        return self.models.relations(model)

    @property
    def audit_log(self) -> AuditLog:
        """The audit table this instance's audited models write to (``dataflow_audit_log``)."""
        if self._audit_log is None:
            self._audit_log = AuditLog(self.database.engine.dialect)
        return self._audit_log

    # -- node types and workflows ---------------------------------------------------------

    @property
    def nodes(self) -> Mapping[str, type[Node]]:
        """Node types this instance defined, by name."""
        return MappingProxyType(self._nodes)

    def add_node(self, node_cls: type[Node], name: str | None = None) -> str:
        """Register ``node_cls`` in this instance's namespace; a name is defined once."""
        key = name or node_cls.type_name or node_cls.__name__
        taken = self._nodes.get(key)
        if taken is not None and taken is not node_cls:
            raise ConfigurationError(
                f"node type '{key}' is already defined on this DataFlow ({self.name!r}) by "
                f"{taken.__module__}.{taken.__qualname__}; a name is defined once per instance"
            )
        self.registry.register(node_cls, key, namespace=self.name)
        self._nodes[key] = node_cls
        return key

    def forget_nodes(self) -> None:
        """Take this instance's node types out of the registry."""
        self.registry.retire(self.name, self._nodes)

    def node_type(self, name: str, database: object = None) -> type[Node]:
        """A node type by name: this instance's own, else the registry's (of ``database``)."""
        found = self._nodes.get(name) if database in (None, self.name) else None
        if found is not None:
            return found
        return self.registry.get(name, database if isinstance(database, str) else None)

    @property
    def workflows(self) -> Mapping[str, Workflow]:
        return MappingProxyType(self._workflows)

    def add_workflow(self, name: str, workflow: Workflow) -> None:
        self._workflows[name] = workflow

    # -- who the work is for --------------------------------------------------------------

    def tenant(self, tenant_id: str) -> AbstractContextManager[str]:
        return self.bound_tenant.bind(tenant_id, "db.tenant()")

    def actor(self, actor: str) -> AbstractContextManager[str]:
        return self.bound_actor.bind(actor, "db.actor()")

    # -- schema ---------------------------------------------------------------------------

    def create_pending_tables(self) -> list[str]:
        """Create or extend the tables of the models defined since the last call."""
        if not self._pending:
            return []
        done: list[str] = []
        with self._schema_lock:
            pending = [self.models[n] for n in self.metadata_order() if n in self._pending]
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
        by_table = {spec.table_name: name for name, spec in self.models.items()}
        return [by_table[t.name] for t in self.metadata.sorted_tables if t.name in by_table]

    # -- statements -----------------------------------------------------------------------

    def statements(self, model: str) -> ModelStatements:
        """The statements of ``model`` (tables are created on first use)."""
        if self._pending:
            self.create_pending_tables()
        found = self._statements.get(model)
        if found is None:
            found = self._statements[model] = ModelStatements(self.get_model(model), self.dialect)
        return found

    @contextmanager
    def connection(
        self, label: str, write: bool = True, scope: Scope | None = None
    ) -> Iterator[Connection]:
        """A connection in the open transaction (or a new one) whose driver errors surface as
        DataFlow errors.

        With ``scope``, the transaction acts for its tenant: on PostgreSQL the row-level
        security policies see it (``set_config('dataflow.tenant_id', ..., true)``).
        """
        with wrapped(label), self.database.begin(write) as conn:
            if scope is not None and self._row_security:
                every = scope.tenant_id is None and self.config.tenant_isolation == "permissive"
                bind_tenant(conn, scope.tenant_id, every)
            yield conn
