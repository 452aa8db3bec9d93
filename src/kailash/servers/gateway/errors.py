"""Errors the gateway returns to callers, and the one message for a missing extra."""

from __future__ import annotations

from typing import Any

from kailash.errors import KailashError

EXTRA_HINT = "pip install 'dataflow-workflows[nexus]'"

#: Problem kinds (``protocol.Problem.kind``) -> HTTP status.
STATUS = {"invalid": 422, "not_found": 404, "conflict": 409, "forbidden": 403}


class GatewayConfigurationError(KailashError, ValueError):
    """An option of create_gateway, Nexus or auth_config is wrong."""


class GatewayError(KailashError):
    """A refused or failed call, as the caller sees it: an HTTP status, a code, a message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.details = details

    def body(self) -> dict[str, Any]:
        """The JSON body of the error response."""
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.details:
            body["details"] = self.details
        return body


def ensure_installed(purpose: str, *modules: str) -> None:
    """Fail with the extra to install when an optional dependency is missing.

    Modules that need the extras import them at their top; callers run this before importing
    such a module, so a missing package is named along with the way to install it.
    """
    import importlib.util

    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise ImportError(
                f"{purpose} needs the '{module}' package, which the 'nexus' extra installs: "
                f"{EXTRA_HINT}"
            )
