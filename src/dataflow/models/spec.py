"""ModelSpec: what DataFlow knows about one ``@db.model`` class."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from dataflow.models.types import FieldType
from kailash.nodes.base import MISSING

if TYPE_CHECKING:
    import sqlalchemy as sa

#: A feature class (``dataflow.features``), as ``ModelSpec.feature`` looks one up.
F = TypeVar("F")


@dataclass(slots=True)
class FieldSpec:
    """One column of a model."""

    name: str
    type: FieldType
    nullable: bool = False
    default: Any = MISSING
    primary_key: bool = False
    autoincrement: bool = False
    #: Maintained by DataFlow (timestamps and feature columns); users do not write it.
    managed: bool = False
    #: Gets an index of its own, ``ix_<table>_<field>`` on the field and the primary key.
    indexed: bool = False

    @property
    def has_default(self) -> bool:
        return self.default is not MISSING

    @property
    def required(self) -> bool:
        """Must a create supply it?"""
        return not (self.nullable or self.has_default or self.managed or self.autoincrement)

    def default_value(self) -> Any:
        """A fresh default (mutable JSON defaults are copied per row)."""
        value = self.default
        if isinstance(value, dict | list):
            import copy

            return copy.deepcopy(value)
        return value


@dataclass(frozen=True, slots=True)
class Relation:
    """``name`` follows ``field`` to the primary key of ``model``."""

    name: str
    field: str
    model: str
    declared: bool = False


@dataclass(slots=True)
class IndexSpec:
    name: str
    fields: tuple[str, ...]
    unique: bool = False


@dataclass(slots=True)
class ModelSpec:
    """A model's name, table and columns, and the options that shape its statements."""

    name: str
    cls: type
    table_name: str
    fields: dict[str, FieldSpec]
    primary_key: str = "id"
    indexes: list[IndexSpec] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    #: The statement pipeline: each option's hooks (``dataflow.features``), in order.
    features: list[Any] = field(default_factory=list)
    #: ``__relations__``: declared relations, and names switched off (None).
    relations: dict[str, Relation | None] = field(default_factory=dict)
    table: sa.Table | None = None

    @property
    def writable(self) -> dict[str, FieldSpec]:
        """Fields a create or update may set (every field the user declared, ``id`` too)."""
        return {n: f for n, f in self.fields.items() if not f.managed}

    @property
    def user_fields(self) -> list[str]:
        """Declared fields without the automatic primary key, for messages."""
        return [n for n, f in self.fields.items() if not f.managed and not f.autoincrement]

    @property
    def required(self) -> list[str]:
        return [n for n, f in self.fields.items() if f.required]

    @property
    def unique_sets(self) -> list[tuple[str, ...]]:
        """Field sets that identify a row: the primary key and each unique index."""
        return [(self.primary_key,)] + [i.fields for i in self.indexes if i.unique]

    def feature(self, kind: type[F]) -> F | None:
        """The model's feature of this class, if the model has it."""
        return next((f for f in self.features if isinstance(f, kind)), None)

    @property
    def t(self) -> sa.Table:
        assert self.table is not None, f"{self.name} has no table yet"
        return self.table
