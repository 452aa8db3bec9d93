"""The base of every DataFlow node: parameter checking with errors a user can act on."""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from dataflow.errors import InvalidFilterError, ValidationError
from dataflow.models.spec import ModelSpec
from dataflow.models.types import INT64, Refused
from kailash.nodes.base import Node, find_template
from kailash.nodes.registry import NAMESPACE_PARAM

if TYPE_CHECKING:
    from dataflow.store import Store

Checker = Callable[[Any], Any]

#: Value types a built workflow may keep as given: nothing can change them afterwards.
_IMMUTABLE = frozenset(
    {str, int, float, bool, type(None), decimal.Decimal, dt.datetime, dt.date, bytes}
)


class DataFlowNode(Node):
    """A node bound to one DataFlow instance's store (and, for generated nodes, one model).

    Every such node takes ``database``: the name of its instance, which picks the node type
    where several instances in one process define it.
    """

    store: ClassVar[Store]
    model: ClassVar[ModelSpec]
    #: Parameter name -> function that returns the checked value or raises Refused.
    checks: ClassVar[Mapping[str, Checker]] = {}
    #: Parameters that must be present when the node runs.
    required_params: ClassVar[tuple[str, ...]] = ()
    #: Whether a built workflow keeps its own copy of the literal params, checked once. Bulk
    #: nodes say no: copying 100,000 rows would cost more than checking them on each run.
    snapshot_params: ClassVar[bool] = True

    def __init__(self, node_id: str, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(node_id, config)
        # A built workflow is a snapshot: later changes to the caller's dicts do not reach it,
        # so the literal params, once checked, need no checking again on the next run.
        self._snapshot = False
        if self.snapshot_params:
            try:
                # Plain values cannot change under us: the top-level copy is snapshot enough.
                plain = all(type(v) in _IMMUTABLE for v in self.config.values())
                self.config = dict(self.config) if plain else copy.deepcopy(self.config)
                self._snapshot = True
            except Exception:  # a value that cannot be copied (a generator, say) is used as is
                pass
        self._checked_config: dict[str, Any] | None = None

    @classmethod
    def label(cls, node_id: str) -> str:
        return f"{cls.node_type()} '{node_id}'"

    @classmethod
    def refuse(cls, node_id: str, message: str, **where: Any) -> ValidationError:
        return ValidationError(f"{cls.label(node_id)}: {message}", node=node_id, **where)

    @classmethod
    def refuse_filter(cls, node_id: str, param: str, exc: InvalidFilterError) -> InvalidFilterError:
        """``exc`` (which names a path inside ``param``) with the node named too."""
        return InvalidFilterError(
            f"{cls.label(node_id)}: {exc}",
            path=exc.path,
            node=node_id,
            param=param,
            field=exc.field,
        )

    @classmethod
    def unknown_parameter(cls, node_id: str, name: str) -> ValidationError:
        candidates = list(cls.checks)
        hint = difflib.get_close_matches(name, candidates, n=1)
        extra = f" Did you mean '{hint[0]}'?" if hint else ""
        return cls.refuse(
            node_id,
            f"unknown parameter '{name}'.{cls.describe_parameters()}{extra}",
            param=name,
        )

    @classmethod
    def describe_parameters(cls) -> str:
        names = ", ".join(n for n in cls.checks if n != "input")
        return f" {cls.node_type()} takes: {names}."

    @classmethod
    def check(cls, node_id: str, inputs: Mapping[str, Any], partial: bool) -> dict[str, Any]:
        """Validate and coerce every input; ``partial`` allows required ones to be absent."""
        checks = cls.checks
        out: dict[str, Any] = {}
        for name, value in inputs.items():
            checker = checks.get(name)
            if checker is None:
                if name == "input":
                    continue
                if name == NAMESPACE_PARAM and hasattr(cls, "store"):
                    cls.check_database(node_id, value)
                    continue
                raise cls.unknown_parameter(node_id, name)
            try:
                out[name] = checker(value)
            except Refused as exc:
                raise cls.refuse(node_id, f"parameter '{name}' expects {exc}", param=name) from None
            except InvalidFilterError as exc:
                raise cls.refuse_filter(node_id, name, exc) from None
        if not partial:
            for name in cls.required_params:
                if name not in out:
                    raise cls.refuse(
                        node_id,
                        f"missing required parameter '{name}'. Set it in the node's params or "
                        f"feed it with workflow.add_connection(source, output, '{node_id}', "
                        f"'{name}').",
                        param=name,
                    )
        return out

    @classmethod
    def check_database(cls, node_id: str, value: Any) -> None:
        """``database`` names the node's own instance, or the node was not picked by it."""
        name = cls.store.name
        if value != name:
            raise cls.refuse(
                node_id,
                f"parameter '{NAMESPACE_PARAM}' is {value!r}, but this node type belongs to the "
                f"DataFlow named {name!r}; give {name!r}, or the name of the DataFlow whose "
                f"{cls.node_type()} you mean (DataFlow(url, name=...))",
                param=NAMESPACE_PARAM,
            )

    @classmethod
    def validate_config(
        cls, node_id: str, config: Mapping[str, Any], connected: frozenset[str]
    ) -> None:
        for name, value in config.items():
            template = find_template(value)
            if template:
                raise cls.refuse(
                    node_id,
                    f"parameter '{name}' holds the template '{template}'. Templates are not "
                    f"evaluated; use workflow.add_connection(source, output, '{node_id}', "
                    f"'{name}') to pass another node's output.",
                    param=name,
                )
        cls.check(node_id, config, partial=True)

    def prepare(self, inputs: dict[str, Any]) -> dict[str, Any]:
        literal = self._snapshot and self._is_config(inputs)
        if literal and self._checked_config is not None:
            return dict(self._checked_config)
        checked = self.check(self.node_id, inputs, partial=False)
        if literal:
            self._checked_config = dict(checked)
        return checked

    def _is_config(self, inputs: Mapping[str, Any]) -> bool:
        """Whether ``inputs`` are the literal params alone (no connection, no run parameter)."""
        config = self.config
        if len(inputs) != len(config):
            return False
        missing = object()
        return all(inputs.get(name, missing) is value for name, value in config.items())


# -- reusable checkers ----------------------------------------------------------------------


def check_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise Refused(f"a bool (True or False), got {type(value).__name__}")


def check_count(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < INT64.stop:
        return value
    raise Refused(f"a non-negative int below 2**63, got {value!r}")


def check_positive(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < INT64.stop:
        return value
    raise Refused(f"a positive int below 2**63, got {value!r}")


def check_optional_count(value: Any) -> int | None:
    return None if value is None else check_count(value)


def check_choice(*choices: str) -> Checker:
    def check(value: Any) -> str:
        if value in choices:
            return value
        raise Refused(f"one of {', '.join(repr(c) for c in choices)}, got {value!r}")

    return check


def check_names(valid: Iterable[str], what: str = "field") -> Checker:
    """A list of names drawn from ``valid`` (a single name is accepted as a one-item list)."""
    allowed = list(valid)

    def check(value: Any) -> list[str]:
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
            raise Refused(f"a list of {what} names, got {type(value).__name__}")
        for i, name in enumerate(names):
            if name not in allowed:
                hint = difflib.get_close_matches(name, allowed, n=1)
                extra = f" (did you mean '{hint[0]}'?)" if hint else ""
                raise Refused(f"{what} names from {', '.join(allowed)}; '{name}' is not one{extra}")
            if name in names[:i]:
                raise Refused(f"each {what} name once; '{name}' is named twice")
        return list(names)

    return check


def passthrough(value: Any) -> Any:
    return value
