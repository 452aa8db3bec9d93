"""Who DataFlow work is done for: the tenant and actor bound with ``db.tenant()``/``db.actor()``.

The bindings are context variables: each thread and each asyncio task sees its own, and the
workflow runtimes carry the caller's into the worker threads they run nodes on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from dataflow.errors import ConfigurationError
from dataflow.models.types import Refused


class Binding:
    """A value bound for the duration of a ``with`` block, checked when bound."""

    def __init__(self, name: str, check: Callable[[Any], Any]) -> None:
        self._var: ContextVar[Any] = ContextVar(name, default=None)
        self._name = name
        self._check = check

    def get(self) -> Any:
        return self._var.get()

    @contextmanager
    def bind(self, value: Any, where: str) -> Iterator[Any]:
        try:
            value = self._check(value)
        except Refused as exc:
            raise ConfigurationError(f"{where} expects {exc}") from None
        token = self._var.set(value)
        try:
            yield value
        finally:
            self._var.reset(token)


def check_actor(value: Any) -> str:
    """Who acts, as the audit log records it: a non-empty str."""
    if isinstance(value, str) and value.strip():
        return value
    raise Refused(f"an actor name (a non-empty str), got {value!r}")
