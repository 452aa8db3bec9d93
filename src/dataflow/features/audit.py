"""``audit_log``: every write to the model leaves a row in ``dataflow_audit_log``.

The row is written by the statement's own transaction, so a write that fails or is rolled
back leaves none. It holds the model, the record's id, the action (``create``, ``update``,
``delete``, ``soft_delete``, ``restore``), the changed fields with their old and new values
(JSON: datetimes and dates as ISO strings, Decimals as strings), the row's tenant, the
operation's actor and the time. Bulk writes add their audit rows batch by batch, with the
driver's fast path (COPY on PostgreSQL, ``executemany`` elsewhere).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from dataflow.dialects import dialect_named
from dataflow.features.base import Feature, Image, Scope
from dataflow.features.tenancy import enable_row_security
from dataflow.models.types import (
    ExactString,
    UTCDateTime,
    integer_type,
    json_plain,
    json_type,
    utcnow,
)

if TYPE_CHECKING:
    from dataflow.models.spec import ModelSpec

TABLE = "dataflow_audit_log"
ACTIONS = ("create", "update", "delete", "soft_delete", "restore")
#: Columns of an audit row that differ from change to change; the others are per statement.
_PER_ROW = ("record_id", "changes", "tenant_id")
#: Below this many rows a plain INSERT costs less than the driver's bulk path.
_FEW = 16


def changes(
    old: dict[str, Any] | None, new: dict[str, Any] | None, fields: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """``{field: {"old": ..., "new": ...}}`` for each of ``fields`` whose value differs."""
    out = {}
    for name in fields:
        before = None if old is None else old.get(name)
        after = None if new is None else new.get(name)
        if before != after:
            out[name] = {"old": json_plain(before), "new": json_plain(after)}
    return out


class AuditLog:
    """The audit table of one DataFlow, and how rows get into it."""

    def __init__(self, dialect: Dialect) -> None:
        self.metadata = sa.MetaData()
        integer = integer_type()
        json = json_type()
        self.table = sa.Table(
            TABLE,
            self.metadata,
            sa.Column("id", integer, primary_key=True, autoincrement=True),
            sa.Column("model", ExactString(), nullable=False),
            sa.Column("record_id", ExactString(), nullable=False),
            sa.Column("action", ExactString(), nullable=False),
            sa.Column("changes", json, nullable=False),
            sa.Column("tenant_id", ExactString(), nullable=True),
            sa.Column("actor", ExactString(), nullable=True),
            sa.Column("created_at", UTCDateTime(), nullable=False),
        )
        t = self.table
        sa.Index(f"ix_{TABLE}_record", t.c.model, t.c.record_id)
        sa.Index(f"ix_{TABLE}_time", t.c.model, t.c.created_at)
        kinds = {"changes": "dict", "created_at": "datetime", "id": "int"}
        self.loader = dialect_named(dialect.name).bulk_loader(
            dialect, {c.name: kinds.get(c.name, "str") for c in t.c}
        )

    def sync(self, conn: Connection) -> list[str]:
        """Row-level security on PostgreSQL: a tenant sees its rows and those of no tenant."""
        return enable_row_security(conn, self.table, null_ok=True)

    def write(self, conn: Connection, shared: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        if len(rows) < _FEW:
            conn.execute(self.table.insert(), [row | shared for row in rows])
            return
        sql, encoded = self.loader.encode(self.table, _PER_ROW, rows, shared)
        self.loader.load(conn, sql, encoded)


class Audit(Feature):
    option = "audit_log"
    images = True

    def __init__(self, model: str) -> None:
        self.model = model
        #: Set when the model joins a DataFlow: that instance's audit table.
        self.log: AuditLog | None = None
        self.recorded: tuple[str, ...] = ()
        self.tenant = False

    def attach(self, log: AuditLog, spec: ModelSpec) -> None:
        """Write to ``log``, recording ``spec``'s declared fields and its soft-delete column."""
        self.log = log
        self.recorded = tuple(
            n
            for n, f in spec.fields.items()
            if not f.primary_key and (not f.managed or n == "deleted_at")
        )
        self.tenant = "tenant_id" in spec.fields

    def record(self, conn: Connection, scope: Scope, action: str, images: list[Image]) -> None:
        assert self.log is not None, f"{self.model} is audited but joined no DataFlow"
        if not images:
            return
        rows = []
        for image in images:
            source = image.new if image.new is not None else image.old
            # Bulk inserts share the operation's tenant rather than carry it row by row.
            tenant = source.get("tenant_id", scope.tenant_id) if self.tenant and source else None
            rows.append(
                {
                    "record_id": str(image.record_id),
                    "changes": changes(image.old, image.new, self.recorded),
                    "tenant_id": tenant,
                }
            )
        shared = {
            "model": self.model,
            "action": action,
            "actor": None if scope.actor is None else str(scope.actor),
            "created_at": utcnow(),
        }
        self.log.write(conn, shared, rows)
