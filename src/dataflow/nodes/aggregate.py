"""``<Model>AggregateNode``: grouped counts, sums, averages, minima and maxima."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dataflow.errors import InvalidFilterError
from dataflow.models.spec import ModelSpec
from dataflow.models.types import Refused
from dataflow.nodes.base import Checker, check_names, check_optional_count, passthrough
from dataflow.nodes.crud import ModelNode
from dataflow.query.aggregate import Aggregation, check_measures

if TYPE_CHECKING:
    from dataflow.features.base import Scope
    from dataflow.query.filters import Filter

#: Parameters that shape the query together; checked as one once all are known.
_PLAN = ("group_by", "aggregate", "having", "sort", "limit")


def _filter_dict(value: Any) -> Any:
    if value is not None and not isinstance(value, Mapping):
        raise Refused(f"a filter dict on group_by fields and aliases, got {type(value).__name__}")
    return value


def aggregate_checks(spec: ModelSpec, filter_check: Checker) -> dict[str, Checker]:
    groupable = [n for n, f in spec.fields.items() if not f.type.is_json]
    return {
        "filter": filter_check,
        "group_by": check_names(groupable),
        "aggregate": lambda value: check_measures(spec, value),
        "having": _filter_dict,
        "sort": passthrough,
        "limit": check_optional_count,
    }


class AggregateNode(ModelNode):
    """``group_by`` fields, ``aggregate`` aliases, ``having`` on either; ``sort``; ``limit``."""

    @classmethod
    def plan(cls, node_id: str, checked: Mapping[str, Any]) -> Aggregation:
        group_by = checked.get("group_by") or []
        measures = checked.get("aggregate") or []
        if not group_by and not measures:
            raise cls.refuse(
                node_id,
                "nothing to compute; give aggregate (like {'n': {'$count': '*'}}), group_by, "
                "or both",
                param="aggregate",
            )
        try:
            return Aggregation(
                cls.model,
                cls.store.dialect,
                group_by,
                measures,
                checked.get("having"),
                checked.get("sort"),
                checked.get("limit"),
            )
        except InvalidFilterError as exc:
            param = next(p for p in _PLAN if exc.path.startswith(p))
            raise cls.refuse_filter(node_id, param, exc) from None

    @classmethod
    def check(cls, node_id: str, inputs: Mapping[str, Any], partial: bool) -> dict[str, Any]:
        checked = super().check(node_id, inputs, partial)
        if partial:
            return checked
        rest = {k: v for k, v in checked.items() if k not in _PLAN}
        return {**rest, "plan": cls.plan(node_id, checked)}

    @classmethod
    def validate_config(
        cls, node_id: str, config: Mapping[str, Any], connected: frozenset[str]
    ) -> None:
        super().validate_config(node_id, config, connected)
        if not connected & set(_PLAN):
            cls.plan(node_id, cls.check(node_id, config, partial=True))

    def run(self, _scope: Scope, plan: Aggregation, filter: Filter | None = None) -> dict[str, Any]:
        statements = self.statements()
        with self.connect(_scope, write=False) as conn:
            rows = statements.aggregate(conn, _scope, filter, plan)
        return {"records": rows, "count": len(rows)}
