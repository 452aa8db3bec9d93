"""``created_at`` and ``updated_at``, kept by DataFlow on every model."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from dataflow.features.base import Feature, Scope
from dataflow.models.spec import FieldSpec
from dataflow.models.types import FIELD_TYPES


class Timestamps(Feature):
    def fields(self) -> list[FieldSpec]:
        kind = FIELD_TYPES[dt.datetime]
        return [FieldSpec(n, kind, managed=True) for n in ("created_at", "updated_at")]

    def insert_values(self, scope: Scope, now: dt.datetime) -> dict[str, Any]:
        return {"created_at": now, "updated_at": now}

    def update_values(self, table: sa.Table, scope: Scope, now: dt.datetime) -> dict[str, Any]:
        return {"updated_at": now}
