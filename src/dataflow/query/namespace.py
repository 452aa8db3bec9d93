"""What the names in a filter or a sort stand for: columns, relations, aggregate aliases."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dataflow.dialects import Dialect
from dataflow.features.tenancy import COLUMN, Tenancy
from dataflow.models.relations import Relation, describe_missing
from dataflow.models.spec import ModelSpec
from dataflow.models.types import FieldType

if TYPE_CHECKING:
    from dataflow.features.base import Scope
    from dataflow.models.catalog import ModelCatalog


@dataclass(frozen=True, slots=True)
class Operand:
    """A value a filter tests or a sort orders by: a column or an aggregate, with its type."""

    name: str
    type: FieldType
    nullable: bool
    expr: sa.ColumnElement[Any]


class Namespace:
    """The names one filter may use, on one backend."""

    #: The column holding a multi-tenant model's tenant, which filters may only pin to the
    #: operation's own tenant.
    tenant_key: str | None = None

    def __init__(self, dialect: Dialect, owner: str, operands: Mapping[str, Operand]) -> None:
        self.dialect = dialect
        #: Names the thing filtered, in messages: a model name or "This aggregate".
        self.owner = owner
        self.operands = operands

    def operand(self, name: str) -> Operand | None:
        return self.operands.get(name)

    def hop(self, name: str) -> Hop | None:
        """The relation ``name`` leads through, if it is one."""
        return None

    def names(self) -> list[str]:
        """Every name a filter may use here, for messages."""
        return list(self.operands)

    def why_not(self, name: str) -> str | None:
        """Why ``name`` is unusable when it looks like a relation or a field, else None."""
        return None


def model_operands(spec: ModelSpec, table: sa.FromClause) -> dict[str, Operand]:
    return {n: Operand(n, f.type, f.nullable, table.c[n]) for n, f in spec.fields.items()}


class ModelNamespace(Namespace):
    """A model's fields and relations, read from ``table`` (the model's table or an alias)."""

    def __init__(
        self,
        models: ModelCatalog,
        dialect: Dialect,
        spec: ModelSpec,
        table: sa.FromClause | None = None,
    ) -> None:
        self.models = models
        self.spec = spec
        self.table = spec.t if table is None else table
        super().__init__(dialect, spec.name, model_operands(spec, self.table))
        if spec.feature(Tenancy) is not None:
            self.tenant_key = COLUMN

    def hop(self, name: str) -> Hop | None:
        relation = self.models.relations(self.spec.name).get(name)
        if relation is None:
            return None
        target = self.models.get_model(relation.model)
        # An alias, so a model can relate to itself and nested hops never clash.
        inner = ModelNamespace(self.models, self.dialect, target, target.t.alias())
        join = inner.table.c[target.primary_key] == self.table.c[relation.field]
        return Hop(relation, inner, join)

    def names(self) -> list[str]:
        return [*self.operands, *self.models.relations(self.spec.name)]

    def why_not(self, name: str) -> str | None:
        return describe_missing(self.spec, name, self.models)

    def scoped(self, scope: Scope) -> list[sa.ColumnElement[bool]]:
        """The clauses the model's features add for ``scope``, on this namespace's table."""
        return [c for f in self.spec.features for c in f.where(self.table, scope)]


@dataclass(frozen=True, slots=True)
class Hop:
    """A relation followed inside a filter: the related model and how its rows join."""

    relation: Relation
    target: ModelNamespace
    join: sa.ColumnElement[bool]
