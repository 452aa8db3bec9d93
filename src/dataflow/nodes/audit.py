"""``<Model>AuditNode``: the audit log of one audited model, filtered and paged."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from dataflow.features.audit import ACTIONS, Audit
from dataflow.features.base import Scope
from dataflow.models.types import Refused, parse_datetime
from dataflow.nodes.crud import ModelNode, page

#: A date_range: from ``start`` (inclusive) to ``end``, inclusive or (for a date) before.
Window = tuple[dt.datetime | None, dt.datetime | None, bool]


def check_actions(value: Any) -> list[str]:
    """One action or a list of them."""
    actions = [value] if isinstance(value, str) else value
    if isinstance(actions, list | tuple) and actions and all(a in ACTIONS for a in actions):
        return list(actions)
    raise Refused(f"an action or a list of them, from {', '.join(ACTIONS)}; got {value!r}")


def _instant(value: Any, name: str) -> tuple[dt.datetime, bool]:
    """A date_range bound as a UTC datetime, and whether it was a whole day (a date)."""
    if isinstance(value, str) and len(value.strip()) == 10:
        with contextlib.suppress(ValueError):  # not a date: a datetime string, or refused below
            value = dt.date.fromisoformat(value.strip())
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return dt.datetime.combine(value, dt.time(), dt.UTC), True
    try:
        return parse_datetime(value), False
    except Refused as exc:
        raise Refused(f"'{name}' as a date or datetime: {exc}") from None


def check_date_range(value: Any) -> Window:
    """``{"start": ..., "end": ...}``: dates or datetimes (ISO strings too); a date end is
    inclusive of that whole day."""
    if not isinstance(value, Mapping) or not value or set(value) - {"start", "end"}:
        raise Refused(
            "a dict with 'start' and/or 'end' (dates or datetimes), e.g. "
            "{'start': '2025-01-01', 'end': '2025-01-31'}"
        )
    start = _instant(value["start"], "start")[0] if value.get("start") is not None else None
    end, inclusive = None, True
    if value.get("end") is not None:
        end, whole_day = _instant(value["end"], "end")
        if whole_day:
            end, inclusive = end + dt.timedelta(days=1), False
    if start is not None and end is not None and end < start:
        raise Refused("a range whose end is not before its start")
    return start, end, inclusive


class AuditNode(ModelNode):
    """The model's audit rows, oldest first: ``record_id``, ``action_type``, ``date_range``."""

    def run(
        self,
        _scope: Scope,
        record_id: Any = None,
        action_type: list[str] | None = None,
        date_range: Window | None = None,
        limit: int | None = None,
        offset: int = 0,
        count_total: bool = False,
    ) -> dict[str, Any]:
        audit = self.model.feature(Audit)
        assert audit is not None and audit.log is not None, f"{self.model.name} is not audited"
        self.statements()  # the tables, the audit log's among them, exist from here on
        log = audit.log.table
        where = [log.c.model == self.model.name]
        if record_id is not None:
            where.append(log.c.record_id == str(record_id))
        if action_type:
            where.append(log.c.action.in_(action_type))
        if date_range is not None:
            start, end, inclusive = date_range
            if start is not None:
                where.append(log.c.created_at >= start)
            if end is not None:
                where.append(log.c.created_at <= end if inclusive else log.c.created_at < end)
        if self.tenancy is not None and _scope.tenant_id is not None:
            where.append(log.c.tenant_id == _scope.tenant_id)
        stmt = sa.select(log).where(*where).order_by(log.c.id).offset(offset)
        if limit is not None:
            stmt = stmt.limit(limit)
        key = self.model.fields[self.model.primary_key].type
        with self.connect(_scope, write=False) as conn:
            rows = [dict(row) for row in conn.execute(stmt).mappings()]
            total = None
            if count_total:
                counted = sa.select(sa.func.count()).select_from(log).where(*where)
                total = int(conn.execute(counted).scalar_one())
        for row in rows:
            if key.name == "int":
                row["record_id"] = int(row["record_id"])
        return page(rows, total, limit, offset)
