"""Pydantic models generated per data source model: request bodies, records, pages, results.

They validate requests on every channel (REST through FastAPI, MCP and the CLI through
``validate``) and describe them in ``/openapi.json`` and the MCP tool schemas. Request bodies
are strict, as the nodes behind them are: ``"100"`` is no float. Datetimes, dates and decimals
also take their ISO-8601 / decimal string forms, which is how JSON carries them.

mypy cannot follow types built at run time, hence the disabled error codes.
"""
# mypy: disable-error-code="call-overload, valid-type, misc, name-defined"

from __future__ import annotations

import datetime as dt
import decimal
import json
import types
from collections.abc import Collection, Mapping
from typing import Annotated, Any, Literal, Optional, Union, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    WithJsonSchema,
    create_model,
)
from pydantic import ValidationError as PydanticValidationError

from kailash.nodes.base import MISSING, Node
from kailash.servers.gateway.errors import GatewayError
from kailash.servers.gateway.protocol import BOUND, FieldInfo, ModelInfo

STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
LAX = ConfigDict(extra="forbid", allow_inf_nan=False)
_TEXT_FORMS = (dt.datetime, dt.date, decimal.Decimal)
_PLAIN = (str, int, float, bool, *_TEXT_FORMS)
#: The integers every backend stores: a 64-bit signed column, SQLite's INTEGER.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]
_SORT_FORMS = (
    'a sort is a list of keys, each a name ("-price" for descending), {"price": 1 or -1} or '
    '{"field": "price", "direction": "asc" or "desc"}'
)


def _sort_shape(value: Any) -> Any:
    """Refuse a sort key whose direction is no scalar; the node checks names and directions."""
    for key in value if isinstance(value, list) else [value]:
        if isinstance(key, str):
            continue
        if isinstance(key, dict) and all(
            isinstance(v, str | int) and not isinstance(v, bool) for v in key.values()
        ):
            continue
        raise ValueError(_SORT_FORMS)
    return value


_SORT_KEY = {"anyOf": [{"type": "string"}, {"type": "object"}]}
Sort = Annotated[
    Any,
    AfterValidator(_sort_shape),
    WithJsonSchema({"anyOf": [{"type": "array", "items": _SORT_KEY}, *_SORT_KEY["anyOf"]]}),
]
#: Parameters the caller never sends: ``input`` only orders nodes; the tenant and the actor
#: (who the audit log says acted) come from auth.
HIDDEN = frozenset({"input", *BOUND})


class DateRange(BaseModel):
    """A window of time: a date ``end`` includes that whole day."""

    model_config = STRICT
    start: Optional[str] = Field(None, description="A date or ISO-8601 datetime.")
    end: Optional[str] = Field(None, description="A date or ISO-8601 datetime.")


def annotation(kind: Any, nullable: bool = False) -> Any:
    """The pydantic annotation of a field or parameter of Python type ``kind``."""
    base: Any
    if kind is dict:
        base = dict[str, Any]
    elif kind is list:
        base = list[Any]
    elif kind in _TEXT_FORMS:
        base = Annotated[kind, Strict(False)]
    elif kind is int:
        base = Int64
    elif kind in _PLAIN:
        base = kind
    elif get_origin(kind) is not None or isinstance(kind, types.UnionType):
        base = kind  # already an annotation: list[float], Annotated[int, ...], a union
    else:
        base = Any
    return Optional[base] if nullable else base


def _distinct(names: list[str]) -> list[str]:
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"names {', '.join(repeated)} more than once; name each field once")
    return names


def _names(model: ModelInfo) -> Any:
    """A list of the model's field names, each at most once."""
    return Annotated[list[Literal[tuple(f.name for f in model.fields)]], AfterValidator(_distinct)]


def _contract(model: ModelInfo, rows: type[BaseModel]) -> dict[str, Any]:
    """Types of the operation parameters that are not fields (protocol module docstring)."""
    names = _names(model)
    return {
        "after": Optional[str],
        "filter": Optional[dict[str, Any]],
        "sort": Optional[Sort],
        "limit": Optional[Count],
        "max_rows": Optional[Count],
        "offset": Count,
        "fields": names,
        "count_total": bool,
        "include_deleted": bool,
        "raise_on_not_found": bool,
        "read_preference": str,
        "batch_size": Annotated[int, Field(gt=0, le=INT64_MAX)],
        "return_ids": bool,
        "conflict_resolution": str,
        "conflict_on": names,
        "update_fields": names,
        "confirm_all": bool,
        "confirmation_required": bool,
        "soft_delete": bool,
        "group_by": names,
        "aggregate": dict[str, Any],
        "having": dict[str, Any],
        "update": dict[str, Any],
        "data": list[rows],
        "version": Int64,
        "record_id": Optional[annotation(model.pk.type)],
        "action_type": Union[str, list[str]],
        "date_range": DateRange,
    }


def _field(info: FieldInfo, optional: bool = False) -> tuple[Any, Any]:
    kind = annotation(info.type, info.nullable)
    if optional:
        return kind, None
    if info.has_default:
        return kind, Field(default=info.default)
    if info.required:
        return kind, ...
    return kind, None


class ModelSchemas:
    """The generated pydantic models of one data source model."""

    def __init__(self, model: ModelInfo, nodes: Mapping[str, type[Node]]) -> None:
        self.model = model
        name = model.name
        pk = model.pk
        self.pk_type: Any = annotation(pk.type)
        writable = [f for f in model.writable if not f.primary_key or not f.generated]
        self.record = create_model(
            name,
            __doc__=f"A {name} record.",
            **{f.name: (annotation(f.type, f.nullable), ...) for f in model.fields},
        )
        #: A record of a page, which ``fields`` may project to some of its fields.
        self.row = create_model(
            f"{name}Row",
            __doc__=f"A {name} record, or the fields of it a list asked for.",
            **{f.name: (annotation(f.type, f.nullable), None) for f in model.fields},
        )
        self.create = create_model(
            f"{name}Create",
            __config__=STRICT,
            __doc__=f"The fields of a new {name}.",
            **{f.name: _field(f) for f in writable},
        )
        changeable = [f for f in model.writable if not f.primary_key]
        # A read-only field the update node takes is a condition of the update: the version
        # an optimistic-locking caller read.
        updater = nodes.get(model.operations.get("update", ""))
        conditions = {
            f.name: _field(f, optional=True)
            for f in model.fields
            if f.read_only
            and f.name not in HIDDEN
            and updater is not None
            and f.name in updater.parameters
        }
        self.replace = create_model(
            f"{name}Replace",
            __config__=STRICT,
            __doc__=f"Every field of a {name}; left-out fields take their defaults.",
            **{f.name: _field(f) for f in changeable},
            **conditions,
        )
        self.patch = create_model(
            f"{name}Patch",
            __config__=STRICT,
            __doc__=f"The fields of a {name} to change.",
            **{f.name: _field(f, optional=True) for f in changeable},
            **conditions,
        )
        upsert_rows = create_model(
            f"{name}UpsertRow",
            __config__=STRICT,
            **{f.name: _field(f) for f in model.writable},
        )
        self.page = create_model(
            f"{name}Page",
            records=(list[self.row], ...),
            count=(int, ...),
            total=(Optional[int], None),
            limit=(Optional[int], None),
            offset=(int, 0),
            next_cursor=(Optional[str], None),
        )
        entry = create_model(
            f"{name}AuditEntry",
            __doc__=f"One write to a {name}: what changed (old and new values), who, when.",
            id=(int, ...),
            model=(str, ...),
            record_id=(self.pk_type, ...),
            action=(str, ...),
            changes=(dict[str, Any], ...),
            tenant_id=(Optional[str], None),
            actor=(Optional[str], None),
            created_at=(dt.datetime, ...),
        )
        self.audit_page = create_model(
            f"{name}AuditPage",
            records=(list[entry], ...),
            count=(int, ...),
            total=(Optional[int], None),
            limit=(Optional[int], None),
            offset=(int, 0),
        )
        self.deleted = create_model(
            f"{name}Deleted", id=(self.pk_type, ...), deleted=(bool, ...), soft=(bool, ...)
        )
        #: Operation -> its arguments (the node's parameters, typed).
        self.args: dict[str, type[BaseModel]] = {}
        for op, node_type in model.operations.items():
            node = nodes.get(node_type)
            if node is None:
                continue
            rows = upsert_rows if op == "bulk_upsert" else self.create
            self.args[op] = self._arguments(op, node, rows)

    def _arguments(self, op: str, node: type[Node], rows: type[BaseModel]) -> type[BaseModel]:
        if op == "create":
            return self.create
        fields = {f.name: f for f in self.model.fields}
        contract = _contract(self.model, rows)
        spec: dict[str, Any] = {}
        for name, param in node.parameters.items():
            if name in HIDDEN:
                continue
            if name == self.model.primary_key and op in ("read", "update", "delete", "restore"):
                spec[name] = (self.pk_type, ...)
            elif name in fields and op in ("update", "upsert"):
                spec[name] = _field(fields[name], optional=True)
            elif name == "data" and op in ("bulk_create", "bulk_upsert"):
                spec[name] = (contract[name], ...)  # the rows are the operation
            elif name in contract:
                spec[name] = (contract[name], ... if param.required else None)
            else:
                spec[name] = (annotation(param.type), ... if param.required else None)
        title = "".join(part.title() for part in op.split("_"))
        return create_model(f"{self.model.name}{title}Args", __config__=STRICT, **spec)


def node_arguments(name: str, node: type[Node]) -> type[BaseModel]:
    """The request body of a node that belongs to no model: its declared parameters."""
    spec = {
        p: (annotation(param.type), ... if param.required else None)
        for p, param in node.parameters.items()
        if p not in HIDDEN
    }
    return create_model(f"{name}Args", __config__=STRICT, **spec)


def workflow_inputs(
    name: str, inputs: Mapping[str, Any], optional: Collection[str] = ()
) -> type[BaseModel]:
    """A registered workflow's inputs, and only those; values are converted to their types."""
    safe = "".join(part.title() for part in name.replace("-", "_").split("_"))
    spec = {n: (annotation(kind), None if n in optional else ...) for n, kind in inputs.items()}
    return create_model(
        f"{safe}Inputs",
        __config__=LAX,
        __doc__=f"The inputs of workflow {name}; it takes no other parameter.",
        **spec,
    )


#: How deeply a request's JSON may nest (a filter of 30 nested ``$and`` is 60 levels).
MAX_DEPTH = 64


def _refuse_constant(name: str) -> Any:
    raise GatewayError(
        422, "validation_error", f"{name} is not a JSON number; numbers must be finite"
    )


def _refuse(path: str, problem: str) -> GatewayError:
    where = f"'{path}': " if path else ""
    return GatewayError(422, "validation_error", f"{where}{problem}", field=path or None)


def _check_json(value: Any, path: str, depth: int) -> None:
    """Refuse what no node may store: integers beyond 64 bits, unencodable text, deep nesting."""
    if depth > MAX_DEPTH:
        raise _refuse(path, f"nested deeper than {MAX_DEPTH} levels; flatten the value")
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise _refuse(
                    path, "holds a lone surrogate (\\ud800-\\udfff), which is no Unicode text"
                ) from None
    elif isinstance(value, int) and not isinstance(value, bool):
        if not INT64_MIN <= value <= INT64_MAX:
            raise _refuse(path, "an integer beyond 64 bits; no column stores it")
    elif isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            _check_json(key, inner, depth + 1)
            _check_json(item, inner, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{path}.{i}" if path else str(i), depth + 1)


def read_json(text: str | bytes, where: str = "") -> Any:
    """JSON as a request may carry it, or a 422 naming the value that no node may take.

    ``NaN`` and ``Infinity`` are refused (they are no JSON numbers), and so are integers beyond
    64 bits, strings holding a lone surrogate and nesting deeper than ``MAX_DEPTH``. Bad syntax
    raises ``json.JSONDecodeError``. ``where`` prefixes the field paths (a query parameter).
    """
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise _refuse(where, f"nested deeper than {MAX_DEPTH} levels; flatten the value") from None
    except GatewayError as error:
        error.field = where or None
        if where:
            error.message = f"'{where}': {error.message}"
        raise
    _check_json(value, where, 0)
    return value


def split_names(text: str) -> list[str]:
    """``"name, -price"`` -> ``["name", "-price"]`` (query strings and CLI options)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def validate(schema: type[BaseModel], raw: Any) -> dict[str, Any]:
    """Check ``raw`` against ``schema``; the values given, converted, or a 422 naming the field."""
    if not isinstance(raw, Mapping):
        raise GatewayError(
            422, "validation_error", f"expected a JSON object, got {type(raw).__name__}"
        )
    try:
        checked = schema.model_validate(dict(raw))
    except PydanticValidationError as exc:
        raise validation_error(exc.errors()) from None
    values = checked.model_dump(exclude_unset=True)
    if checked.model_extra:
        values.update(checked.model_extra)
    return values


def validation_error(errors: Any, skip: tuple[str, ...] = ()) -> GatewayError:
    """A 422 from pydantic's error list; ``skip`` names location prefixes to drop (``body``)."""
    details = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ())]
        if loc and loc[0] in skip:
            loc = loc[1:]
        details.append({"field": ".".join(loc), "message": error.get("msg", "")})
    first = details[0] if details else {"field": "", "message": "invalid request"}
    where = f"'{first['field']}': " if first["field"] else ""
    return GatewayError(
        422,
        "validation_error",
        f"{where}{first['message']}",
        field=first["field"] or None,
        details=details if len(details) > 1 else None,
    )


def defaults_for(model: ModelInfo) -> dict[str, Any]:
    """What a full replacement (PUT) stores for each changeable field it leaves out."""
    out: dict[str, Any] = {}
    for f in model.writable:
        if f.primary_key:
            continue
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.nullable:
            out[f.name] = None
    return out
