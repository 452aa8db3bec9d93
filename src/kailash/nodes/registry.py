"""Node types by name, so workflows can say ``add_node("UserCreateNode", ...)``."""

from __future__ import annotations

import difflib
import threading

from kailash.errors import WorkflowValidationError
from kailash.nodes.base import Node


class NodeRegistry:
    """A mapping of node type names to Node classes."""

    def __init__(self) -> None:
        self._types: dict[str, type[Node]] = {}
        self._lock = threading.Lock()

    def register(self, cls: type[Node], name: str | None = None, *, replace: bool = False) -> str:
        """Register ``cls`` under ``name`` (default: its class name) and return the name.

        Registering a different class under a taken name is refused unless ``replace`` is set.
        """
        if not (isinstance(cls, type) and issubclass(cls, Node)):
            raise TypeError(f"{cls!r} is not a Node subclass")
        key = name or cls.type_name or cls.__name__
        with self._lock:
            taken = self._types.get(key)
            if taken is not None and taken is not cls and not replace:
                raise WorkflowValidationError(
                    f"node type '{key}' is already registered by {taken.__module__}."
                    f"{taken.__qualname__}; pass replace=True to replace it"
                )
            if not cls.type_name:
                cls.type_name = key
            self._types[key] = cls
        return key

    def unregister(self, name: str) -> None:
        with self._lock:
            self._types.pop(name, None)

    def get(self, name: str) -> type[Node]:
        try:
            return self._types[name]
        except KeyError:
            hint = difflib.get_close_matches(name, self._types, n=1)
            extra = f" Did you mean '{hint[0]}'?" if hint else ""
            raise WorkflowValidationError(
                f"unknown node type '{name}'.{extra} Registered types are listed by "
                "kailash.nodes.registry.default_registry.names()."
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def names(self) -> list[str]:
        return sorted(self._types)


default_registry = NodeRegistry()


def register_node(cls: type[Node] | None = None, *, name: str | None = None, replace: bool = False):
    """Class decorator: ``@register_node`` or ``@register_node(name="X")``."""

    def wrap(node_cls: type[Node]) -> type[Node]:
        default_registry.register(node_cls, name, replace=replace)
        return node_cls

    return wrap(cls) if cls is not None else wrap
