"""Turn a plain annotated class into a ModelSpec."""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Sequence
from typing import Any, Protocol

from dataflow.errors import ModelDefinitionError
from dataflow.models.relations import declared_relations
from dataflow.models.spec import FieldSpec, IndexSpec, ModelSpec
from dataflow.models.types import FIELD_TYPES, FieldType
from kailash.nodes.base import MISSING

#: Names the generated nodes use as parameters; a field cannot take them.
RESERVED = frozenset({"input"})
TIMESTAMPS = ("created_at", "updated_at")


def check_class(cls: Any) -> None:
    if not isinstance(cls, type):
        raise ModelDefinitionError(f"@db.model decorates a class, got {cls!r}")


def table_name_for(class_name: str) -> str:
    """``User`` -> ``users``, ``OrderItem`` -> ``order_items``, ``Category`` -> ``categories``."""
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])|(?<=[A-Z])([A-Z])(?=[a-z])", r"_\1\2", class_name)
    snake = snake.lower()
    if re.search(r"[^aeiou]y$", snake):
        return snake[:-1] + "ies"
    if re.search(r"(s|x|z|ch|sh)$", snake):
        return snake + "es"
    return snake + "s"


def _field_type(model: str, name: str, annotation: Any) -> tuple[FieldType, bool]:
    """The field's type and whether it is nullable (``Optional[...]``)."""
    nullable = False
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise ModelDefinitionError(
                f"{model}.{name}: a field holds one type (Optional[X] is allowed), got "
                f"{annotation!r}"
            )
        nullable = True
        annotation = args[0]
        origin = typing.get_origin(annotation)
    if origin in (dict, list):
        annotation = origin
    field_type = FIELD_TYPES.get(annotation)
    if field_type is None:
        supported = ", ".join(ft.name for ft in FIELD_TYPES.values())
        raise ModelDefinitionError(
            f"{model}.{name}: unsupported type {annotation!r}. Supported: {supported}, "
            "each optionally Optional[...]"
        )
    return field_type, nullable


def _indexes(cls: type, fields: dict[str, FieldSpec], table: str) -> list[IndexSpec]:
    raw = getattr(cls, "__indexes__", None) or []
    if not isinstance(raw, list | tuple):
        raise ModelDefinitionError(f"{cls.__name__}.__indexes__ must be a list of dicts")
    result = []
    for i, item in enumerate(raw):
        where = f"{cls.__name__}.__indexes__[{i}]"
        if not isinstance(item, dict) or not item.get("fields"):
            raise ModelDefinitionError(
                f"{where}: expected {{'name': ..., 'fields': [...], 'unique': bool}}"
            )
        unknown_keys = set(item) - {"name", "fields", "unique"}
        if unknown_keys:
            raise ModelDefinitionError(
                f"{where}: unknown key(s) {', '.join(sorted(unknown_keys))}; "
                "known: name, fields, unique"
            )
        names = item["fields"]
        if isinstance(names, str):
            names = [names]
        for name in names:
            if name not in fields:
                raise ModelDefinitionError(
                    f"{where}: no field '{name}'. Fields: {', '.join(fields)}"
                )
        name = item.get("name") or f"ix_{table}_{'_'.join(names)}"
        result.append(IndexSpec(name, tuple(names), bool(item.get("unique", False))))
    return result


class AddsFields(Protocol):
    """A feature of the model, as parsing sees it: the columns it adds."""

    @property
    def option(self) -> str: ...

    def fields(self) -> list[FieldSpec]: ...


def parse_model(cls: type, options: dict[str, Any], features: Sequence[AddsFields]) -> ModelSpec:
    """Read a class's annotations, defaults and dunder options into a ModelSpec.

    ``options`` are its checked ``__dataflow__`` options and ``features`` the statement
    pipeline they turn on (``dataflow.features.options.model_spec`` gives both).
    """
    check_class(cls)
    model = cls.__name__
    try:
        hints = typing.get_type_hints(cls)
    except Exception as exc:
        raise ModelDefinitionError(f"{model}: cannot read its annotations ({exc})") from exc
    own = inspect.get_annotations(cls)
    declared: dict[str, FieldSpec] = {}
    for name in own:
        annotation = hints[name]
        if typing.get_origin(annotation) is typing.ClassVar:
            continue
        if name.startswith("_"):
            raise ModelDefinitionError(
                f"{model}.{name}: field names may not start with '_' (use ClassVar for class data)"
            )
        if name in RESERVED:
            raise ModelDefinitionError(
                f"{model}.{name}: '{name}' is a parameter of every node; rename the field"
            )
        field_type, nullable = _field_type(model, name, annotation)
        default = getattr(cls, name, MISSING)
        if default is None:
            if not nullable:
                raise ModelDefinitionError(
                    f"{model}.{name}: default None needs Optional[{field_type.name}]"
                )
        elif default is not MISSING:
            try:
                default = field_type.coerce(default)
            except ValueError as exc:
                raise ModelDefinitionError(
                    f"{model}.{name}: default {default!r} is not valid: expects {exc}"
                ) from None
        if name in TIMESTAMPS and field_type.name != "datetime":
            raise ModelDefinitionError(
                f"{model}.{name}: DataFlow maintains '{name}' as a datetime; declare it as "
                "datetime or leave it out"
            )
        declared[name] = FieldSpec(name, field_type, nullable=nullable, default=default)

    fields: dict[str, FieldSpec] = {}
    pk = declared.pop("id", None)
    if pk is None:
        pk = FieldSpec("id", FIELD_TYPES[int], primary_key=True, autoincrement=True)
    else:
        if pk.nullable:
            raise ModelDefinitionError(f"{model}.id: the primary key cannot be Optional")
        if pk.type.name not in ("int", "str"):
            raise ModelDefinitionError(f"{model}.id: a primary key is an int or a str")
        pk.primary_key = True
        pk.autoincrement = pk.type.name == "int" and not pk.has_default
    fields["id"] = pk
    for name, spec in declared.items():
        if name not in TIMESTAMPS:
            fields[name] = spec
    for feature in features:
        for extra in feature.fields():
            if extra.name in fields:
                raise ModelDefinitionError(
                    f"{model}.{extra.name}: the '{feature.option}' option adds '{extra.name}' "
                    "itself; remove the field from the class"
                )
            fields[extra.name] = extra

    table_name = cls.__dict__.get("__tablename__") or table_name_for(model)
    if not isinstance(table_name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table_name):
        raise ModelDefinitionError(
            f"{model}.__tablename__ must be a plain identifier, got {table_name!r}"
        )
    indexes = _indexes(cls, fields, table_name)
    return ModelSpec(
        model,
        cls,
        table_name,
        fields,
        indexes=indexes,
        options=options,
        features=list(features),
        relations=declared_relations(cls, fields),
    )
