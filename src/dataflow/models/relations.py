"""Relations between models: ``customer_id`` + model ``Customer`` makes ``customer``.

A field ``<name>_id`` is a relation named ``<name>`` to the model whose name is ``<name>`` in
CamelCase, when that model is defined on the same DataFlow and its primary key has the
field's type. ``__relations__`` declares the others, or switches the convention off:

    __relations__ = {
        "buyer": "Customer",                                # field buyer_id -> Customer
        "seller": {"model": "Vendor", "field": "sold_by"},  # any field name
        "parent": None,                                     # parent_id is not a relation
    }

A relation filters through its target (``{"customer": {"email": ...}}``) and is a FOREIGN
KEY in the schema. Targets are looked up when needed, so a model may name one defined later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dataflow.errors import ModelDefinitionError
from dataflow.models.spec import FieldSpec, ModelSpec, Relation

__all__ = ["Relation", "declared_relations", "describe_missing", "resolve_relations"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def model_name_for(relation: str) -> str:
    """``customer`` -> ``Customer``, ``order_item`` -> ``OrderItem``."""
    return "".join(part[:1].upper() + part[1:] for part in relation.split("_"))


def declared_relations(cls: type, fields: Mapping[str, FieldSpec]) -> dict[str, Relation | None]:
    """Read ``__relations__``: relation name -> Relation, or None to switch the convention off."""
    raw = cls.__dict__.get("__relations__") or {}
    where = f"{cls.__name__}.__relations__"
    if not isinstance(raw, Mapping):
        raise ModelDefinitionError(f"{where} must be a dict of relation name -> model name")
    out: dict[str, Relation | None] = {}
    for name, value in raw.items():
        at = f"{where}[{name!r}]"
        if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
            raise ModelDefinitionError(f"{at}: a relation name is a plain identifier")
        if name in fields:
            raise ModelDefinitionError(f"{at}: '{name}' is already a field; name it otherwise")
        if value is None:
            out[name] = None
            continue
        if isinstance(value, str):
            value = {"model": value}
        if not isinstance(value, Mapping) or not isinstance(value.get("model"), str):
            raise ModelDefinitionError(
                f"{at}: expected a model name, {{'model': name, 'field': field}} or None"
            )
        unknown = set(value) - {"model", "field"}
        if unknown:
            raise ModelDefinitionError(
                f"{at}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; known: model, field"
            )
        field = value.get("field", f"{name}_id")
        spec = fields.get(field)
        if spec is None:
            raise ModelDefinitionError(
                f"{at}: no field '{field}' holds the relation's key; add it, or name the field "
                "with {'model': ..., 'field': ...}"
            )
        if spec.primary_key or spec.type.name not in ("int", "str"):
            raise ModelDefinitionError(
                f"{at}: field '{field}' must be an int or str field other than the primary key"
            )
        out[name] = Relation(name, field, value["model"], declared=True)
    return out


def candidate_relations(spec: ModelSpec) -> dict[str, Relation]:
    """The declared relations and those the naming convention suggests (targets unchecked)."""
    declared = spec.relations
    found = {name: rel for name, rel in declared.items() if rel is not None}
    taken = {rel.field for rel in found.values()}
    for field in spec.fields.values():
        name = field.name.removesuffix("_id")
        if (
            name == field.name
            or not name
            or field.primary_key
            or field.managed
            or field.name in taken
            or name in spec.fields
            or name in declared
            or field.type.name not in ("int", "str")
        ):
            continue
        found[name] = Relation(name, field.name, model_name_for(name))
    return found


def resolve_relations(spec: ModelSpec, models: Mapping[str, ModelSpec]) -> dict[str, Relation]:
    """The relations of ``spec`` whose target model is defined and whose key types agree."""
    out = {}
    for name, rel in candidate_relations(spec).items():
        target = models.get(rel.model)
        if target is None:
            continue
        key_type = target.fields[target.primary_key].type.name
        if spec.fields[rel.field].type.name != key_type:
            if rel.declared:
                raise ModelDefinitionError(
                    f"{spec.name}.__relations__[{name!r}]: field '{rel.field}' is a "
                    f"{spec.fields[rel.field].type.name} but {target.name}'s primary key is a "
                    f"{key_type}"
                )
            continue
        out[name] = rel
    return out


def describe_missing(spec: ModelSpec, name: str, models: Mapping[str, Any]) -> str | None:
    """Why ``name`` is not a usable relation of ``spec``, when it looks like one."""
    rel = candidate_relations(spec).get(name)
    if rel is None:
        return None
    if rel.model not in models:
        return (
            f"'{name}' would be a relation through {rel.field}, but this DataFlow has no model "
            f"'{rel.model}'"
        )
    return (
        f"'{name}' would be a relation through {rel.field}, but {rel.field}'s type differs "
        f"from {rel.model}'s primary key"
    )
