"""Node types by name, so workflows can say ``add_node("UserCreateNode", ...)``.

A name is registered either globally (one class for the whole process) or in a namespace: an
owner such as a DataFlow instance registers its own classes under its own name, so two owners
may both define ``UserCreateNode``. A name one namespace defines resolves without more;
a name several define must be asked for with its namespace (a node's ``database`` parameter)
and is never silently rebound. An owner's names stay until it retires them (``retire``), which
a DataFlow does when it is closed or goes away.
"""

from __future__ import annotations

import difflib
import threading
from collections import deque
from collections.abc import Mapping

from kailash.errors import WorkflowValidationError
from kailash.nodes.base import Node

#: The node parameter that names the namespace of a node type several namespaces define.
NAMESPACE_PARAM = "database"


class NodeRegistry:
    """A mapping of node type names to Node classes, globally or per namespace."""

    def __init__(self) -> None:
        self._types: dict[str, type[Node]] = {}
        #: Namespaced names -> their (namespace, class) entries; each tuple is replaced whole
        #: under the lock, so a lookup reads one without taking it.
        self._spaced: dict[str, tuple[tuple[str, type[Node]], ...]] = {}
        self._lock = threading.RLock()
        self._retired: deque[tuple[str, dict[str, type[Node]]]] = deque()

    def register(
        self,
        cls: type[Node],
        name: str | None = None,
        *,
        replace: bool = False,
        namespace: str | None = None,
    ) -> str:
        """Register ``cls`` under ``name`` (default: its class name) and return the name.

        Without ``namespace`` the name is global: registering a different class under a taken
        name is refused unless ``replace`` is set. With one, the class joins the classes other
        namespaces (or other owners of the same name) registered under that name.
        """
        if not (isinstance(cls, type) and issubclass(cls, Node)):
            raise TypeError(f"{cls!r} is not a Node subclass")
        key = name or cls.type_name or cls.__name__
        with self._lock:
            self._drain()
            taken = self._types.get(key)
            if namespace is None:
                if taken is not None and taken is not cls and not replace:
                    raise WorkflowValidationError(
                        f"node type '{key}' is already registered by {taken.__module__}."
                        f"{taken.__qualname__}; pass replace=True to replace it"
                    )
                if self._live(key):
                    raise WorkflowValidationError(
                        f"node type '{key}' is already defined by {self._owners(key)}; a global "
                        "node type cannot share its name"
                    )
                self._types[key] = cls
            else:
                if taken is not None:
                    raise WorkflowValidationError(
                        f"node type '{key}' is already registered globally by "
                        f"{taken.__module__}.{taken.__qualname__}; choose another name"
                    )
                # Owners that share a name each keep their class; the owner itself refuses to
                # define one name twice.
                entries = self._spaced.get(key, ())
                if (namespace, cls) not in entries:
                    self._spaced[key] = (*entries, (namespace, cls))
            if not cls.type_name:
                cls.type_name = key
        return key

    def unregister(self, name: str) -> None:
        """Forget the global node type ``name``."""
        with self._lock:
            self._types.pop(name, None)

    def retire(self, namespace: str, classes: Mapping[str, type[Node]]) -> None:
        """Forget ``classes`` (by name) of ``namespace``, e.g. when their owner goes away.

        Safe in a finalizer, which may run in the middle of any call on this thread: the work
        is queued here, and done under the lock by the next call that reads the registry.
        """
        self._retired.append((namespace, dict(classes)))

    def _drain(self) -> None:
        """Apply the queued ``retire`` calls; the caller holds the lock."""
        while self._retired:
            namespace, classes = self._retired.popleft()
            for name, cls in classes.items():
                kept = tuple(e for e in self._spaced.get(name, ()) if e != (namespace, cls))
                if kept:
                    self._spaced[name] = kept
                else:
                    self._spaced.pop(name, None)

    def get(self, name: str, namespace: str | None = None) -> type[Node]:
        """The class registered as ``name`` (in ``namespace``, when several define it)."""
        found = self._types.get(name)
        if found is not None:
            return found
        candidates = self._entries(name) if namespace is None else self._candidates(name, namespace)
        if len(candidates) == 1:
            return candidates[0][1]
        if candidates:
            spaces = {space for space, _ in candidates}
            if len(spaces) == 1:
                raise WorkflowValidationError(
                    f"node type '{name}' is defined by {len(candidates)} owners all named "
                    f"'{candidates[0][0]}'; give each a distinct name (DataFlow(url, name=...)) "
                    "and pick one with the node's "
                    f"'{NAMESPACE_PARAM}' parameter, or close (db.close()) the one no longer used"
                )
            raise WorkflowValidationError(
                f"node type '{name}' is defined by {self._owners(name)}; say which with the "
                f"node's '{NAMESPACE_PARAM}' parameter, e.g. "
                f"{{'{NAMESPACE_PARAM}': '{candidates[0][0]}'}}"
            )
        if namespace is not None and self._live(name):
            raise WorkflowValidationError(
                f"node type '{name}' is not defined by '{namespace}'; it is defined by "
                f"{self._owners(name)}"
            )
        hint = difflib.get_close_matches(name, self.names(), n=1)
        extra = f" Did you mean '{hint[0]}'?" if hint else ""
        raise WorkflowValidationError(
            f"unknown node type '{name}'.{extra} Registered types are listed by "
            "kailash.nodes.registry.default_registry.names()."
        )

    def defines(self, name: object, namespace: object) -> bool:
        """Whether ``namespace`` defines the node type ``name``."""
        return (
            isinstance(name, str)
            and isinstance(namespace, str)
            and bool(self._candidates(name, namespace))
        )

    def _entries(self, name: str) -> tuple[tuple[str, type[Node]], ...]:
        if self._retired:
            with self._lock:
                self._drain()
        return self._spaced.get(name, ())

    def _candidates(self, name: str, namespace: str | None) -> tuple[tuple[str, type[Node]], ...]:
        entries = self._entries(name)
        if namespace is None:
            return entries
        return tuple(e for e in entries if e[0] == namespace)

    def _live(self, name: str) -> list[str]:
        """The namespaces defining ``name``, each once, in the order they did."""
        return list(dict.fromkeys(space for space, _ in self._entries(name)))

    def _owners(self, name: str) -> str:
        return ", ".join(f"'{s}'" for s in sorted(self._live(name)))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._types or bool(self._live(name)))

    def names(self) -> list[str]:
        return sorted({*self._types, *(n for n in self._spaced if self._live(n))})


default_registry = NodeRegistry()


def register_node(cls: type[Node] | None = None, *, name: str | None = None, replace: bool = False):
    """Class decorator: ``@register_node`` or ``@register_node(name="X")``."""

    def wrap(node_cls: type[Node]) -> type[Node]:
        default_registry.register(node_cls, name, replace=replace)
        return node_cls

    return wrap(cls) if cls is not None else wrap
