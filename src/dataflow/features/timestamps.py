"""``created_at`` and ``updated_at``, kept by DataFlow on every model."""

from __future__ import annotations

import datetime as dt
from typing import Any

from dataflow.features.base import Feature, Scope
from dataflow.models.spec import FieldSpec
from dataflow.models.types import FIELD_TYPES


class Timestamps(Feature):
    def fields(self) -> list[FieldSpec]:
        kind = FIELD_TYPES[dt.datetime]
        return [FieldSpec(n, kind, managed=True) for n in ("created_at", "updated_at")]

    def on_insert(self, row: dict[str, Any], scope: Scope, now: dt.datetime) -> None:
        row["created_at"] = now
        row["updated_at"] = now

    def on_update(self, changes: dict[str, Any], scope: Scope, now: dt.datetime) -> None:
        changes["updated_at"] = now
