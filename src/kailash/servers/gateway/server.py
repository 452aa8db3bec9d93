"""``create_gateway``: the REST half of Nexus, for any data source and registered workflows."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from kailash.servers.gateway.auth import Authenticator
from kailash.servers.gateway.errors import GatewayConfigurationError, ensure_installed
from kailash.servers.gateway.protocol import DataSource
from kailash.workflow.builder import WorkflowBuilder
from kailash.workflow.graph import Workflow

if TYPE_CHECKING:
    from fastapi import FastAPI

    from kailash.servers.gateway.metrics import Metrics
    from kailash.servers.gateway.service import GatewayService

log = logging.getLogger("kailash.gateway")

SERVER_TYPES = ("basic", "enterprise")
_REQUIRED = ("fastapi", "pydantic", "uvicorn", "prometheus_client")


def check_source(source: Any, option: str) -> DataSource | None:
    if source is not None and not isinstance(source, DataSource):
        raise GatewayConfigurationError(
            f"{option} must be a data source such as a DataFlow instance (it lists models and "
            f"node types: describe_models(), nodes, explain_error()), got {type(source).__name__}"
        )
    return source


def make_service(
    source: DataSource | None,
    *,
    auth_config: Mapping[str, Any] | None,
    authentication_required: bool,
    metrics: Metrics | None,
    expose_bulk: bool = True,
    expose_analytics: bool = True,
) -> GatewayService:
    """The operations layer with its authenticator (auth_config and KAILASH_AUTH_CONFIG)."""
    from kailash.servers.gateway.service import GatewayService

    header = source.tenant_id_header if source is not None else "X-Tenant-ID"
    auth = Authenticator.configured(
        auth_config, required=authentication_required, tenant_header=header
    )
    return GatewayService(
        source, auth, expose_bulk=expose_bulk, expose_analytics=expose_analytics, metrics=metrics
    )


def check_exposure(
    auth: Authenticator, host: str, allow_anonymous: bool, options: Mapping[str, Any], what: str
) -> None:
    """Refuse to serve an open API beyond this machine, and warn whenever it is open.

    Without authentication anyone who reaches the port may read, change and bulk-delete every
    model, so an open API listens on loopback only unless its owner says otherwise.
    """
    if not auth.anonymous_allowed:
        return
    fix = (
        "configure auth_config (api_keys or jwt) with authentication_required=True or "
        "rbac_enabled=True"
    )
    local = "fd" not in options and ("uds" in options or _loopback(host))
    where = options.get("uds") or host
    if not local and not allow_anonymous:
        raise GatewayConfigurationError(
            f"{what}: refusing to serve on {where} without authentication: anyone who reaches it "
            f"could read, change and delete every record. {fix}, or pass allow_anonymous=True "
            "to serve an open API on purpose (or bind 127.0.0.1)"
        )
    log.warning(
        "%s: the API is open: no authentication is configured, so anyone who reaches %s may "
        "read, change and delete every record%s; %s",
        what,
        where,
        "" if local else " (allow_anonymous=True)",
        fix,
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Gateway:
    """A REST gateway. ``gateway.app`` is its FastAPI app; ``gateway.run()`` serves it.

    The gateway is also an ASGI application itself, so ``uvicorn.run(gateway)`` works too.
    """

    def __init__(
        self,
        service: GatewayService,
        *,
        title: str,
        auto_generate_endpoints: bool,
        metrics: Metrics | None,
        allow_anonymous: bool = False,
    ) -> None:
        self.service = service
        self.allow_anonymous = bool(allow_anonymous)
        self.title = title
        self.auto_generate_endpoints = auto_generate_endpoints
        self.metrics = metrics

    @cached_property
    def app(self) -> FastAPI:
        """The FastAPI app, built on first use from the models defined by then."""
        from kailash.servers.gateway.rest import build_app

        return build_app(
            self.service,
            title=self.title,
            auto_generate_endpoints=self.auto_generate_endpoints,
            metrics=self.metrics,
        )

    def register(
        self,
        name: str,
        workflow: WorkflowBuilder | Workflow,
        inputs: Mapping[str, str | Sequence[str]] | None = None,
    ) -> None:
        """Serve ``workflow`` at ``POST /api/workflows/<name>/execute``.

        Callers give its ``{{placeholders}}`` and the node parameters ``inputs`` declares
        (input name -> ``"node_id.parameter"``); every other param stays as written.
        """
        self.service.register(name, workflow, inputs)
        if "app" in self.__dict__:
            from kailash.servers.gateway.rest import add_execute_route

            add_execute_route(self.app, self.service, self.service.executable(name))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    def run(self, host: str = "127.0.0.1", port: int = 8000, **options: Any) -> None:
        """Serve with uvicorn until interrupted (``options`` go to ``uvicorn.run``).

        Without authentication only a loopback address is served, unless the gateway was
        created with ``allow_anonymous=True``.
        """
        import uvicorn

        check_exposure(self.service.auth, host, self.allow_anonymous, options, self.title)

        uvicorn.run(self.app, host=host, port=port, **options)


def create_gateway(
    title: str = "Kailash Gateway",
    server_type: str = "enterprise",
    dataflow_integration: DataSource | None = None,
    auto_generate_endpoints: bool = True,
    authentication_required: bool = False,
    *,
    auth_config: Mapping[str, Any] | None = None,
    allow_anonymous: bool = False,
) -> Gateway:
    """A REST API over a data source's models and nodes.

    ``server_type`` is ``"enterprise"`` (Prometheus metrics at ``/metrics``, per-operation
    metrics) or ``"basic"`` (neither). ``auth_config`` (else the ``KAILASH_AUTH_CONFIG``
    environment variable, JSON) sets API keys, JWT settings, roles and the tenant header.
    Without authentication ``run()`` serves 127.0.0.1 only; ``allow_anonymous=True`` lets it
    serve an open API on any address.
    """
    ensure_installed("create_gateway", *_REQUIRED)
    from kailash.servers.gateway.metrics import Metrics

    if server_type not in SERVER_TYPES:
        raise GatewayConfigurationError(
            f"server_type must be one of {', '.join(SERVER_TYPES)}, got {server_type!r}"
        )
    if not isinstance(title, str) or not title:
        raise GatewayConfigurationError(f"title must be a non-empty string, got {title!r}")
    source = check_source(dataflow_integration, "dataflow_integration")
    metrics = Metrics(track_operations=True) if server_type == "enterprise" else None
    service = make_service(
        source,
        auth_config=auth_config,
        authentication_required=authentication_required,
        metrics=metrics,
    )
    return Gateway(
        service,
        title=title,
        auto_generate_endpoints=auto_generate_endpoints,
        metrics=metrics,
        allow_anonymous=allow_anonymous,
    )
