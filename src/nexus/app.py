"""Nexus: one set of DataFlow models and workflows served over REST, CLI and MCP."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from kailash.servers.gateway.auth import Credentials
from kailash.servers.gateway.errors import GatewayConfigurationError, ensure_installed
from kailash.servers.gateway.protocol import DataSource
from kailash.servers.gateway.server import check_exposure, check_source, make_service
from kailash.workflow.builder import WorkflowBuilder
from kailash.workflow.graph import Workflow

if TYPE_CHECKING:
    from fastapi import FastAPI

    from kailash.servers.gateway.metrics import Metrics
    from nexus.channels.mcp import MCPChannel

_DATAFLOW_KEYS = {
    "integration": None,
    "auto_generate_endpoints": True,
    "auto_generate_cli_commands": True,
    "auto_generate_mcp_tools": True,
    "expose_bulk_operations": True,
    "expose_analytics": True,
}
_MONITORING_KEYS = {"prometheus_enabled": False, "track_database_metrics": False}


def _options(name: str, given: Mapping[str, Any] | None, known: dict[str, Any]) -> dict[str, Any]:
    given = dict(given or {})
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise GatewayConfigurationError(
            f"{name}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    return {**known, **given}


class Nexus:
    """A DataFlow instance's models and nodes, and registered workflows, on every channel.

    Constructing a Nexus starts nothing: ``run()`` serves REST (and MCP at ``/mcp``) with
    uvicorn, the ``nexus`` command is the CLI, ``nexus mcp`` serves MCP over stdio.
    """

    def __init__(
        self,
        title: str = "Nexus",
        *,
        enable_api: bool = True,
        enable_cli: bool = True,
        enable_mcp: bool = True,
        channels_synced: bool = True,
        dataflow_integration: DataSource | None = None,
        dataflow_config: Mapping[str, Any] | None = None,
        auth_config: Mapping[str, Any] | None = None,
        monitoring_config: Mapping[str, Any] | None = None,
        authentication_required: bool = False,
        allow_anonymous: bool = False,
    ) -> None:
        ensure_installed("Nexus", "fastapi", "pydantic", "uvicorn", "click", "mcp")
        if not channels_synced:
            raise GatewayConfigurationError(
                "channels_synced=False is not supported: every channel serves the same models "
                "and registered workflows"
            )
        if not isinstance(title, str) or not title:
            raise GatewayConfigurationError(f"title must be a non-empty string, got {title!r}")
        dataflow = _options("dataflow_config", dataflow_config, _DATAFLOW_KEYS)
        monitoring = _options("monitoring_config", monitoring_config, _MONITORING_KEYS)
        if dataflow["integration"] is not None and dataflow_integration is not None:
            raise GatewayConfigurationError(
                "give the DataFlow instance once: dataflow_integration or "
                "dataflow_config['integration']"
            )
        source = check_source(
            dataflow_integration or dataflow["integration"], "dataflow_integration"
        )
        if monitoring["track_database_metrics"] and not monitoring["prometheus_enabled"]:
            raise GatewayConfigurationError(
                "monitoring_config: track_database_metrics needs prometheus_enabled=True, "
                "which serves the metrics at /metrics"
            )
        self.title = title
        #: Serve an open API (no authentication) on addresses other than loopback.
        self.allow_anonymous = bool(allow_anonymous)
        self.enable_api = bool(enable_api)
        self.enable_cli = bool(enable_cli)
        self.enable_mcp = bool(enable_mcp)
        self.auto_generate_endpoints = bool(dataflow["auto_generate_endpoints"])
        self.auto_generate_cli_commands = bool(dataflow["auto_generate_cli_commands"])
        self.auto_generate_mcp_tools = bool(dataflow["auto_generate_mcp_tools"])
        self.metrics: Metrics | None = None
        if monitoring["prometheus_enabled"]:
            ensure_installed("monitoring_config prometheus_enabled", "prometheus_client")
            from kailash.servers.gateway.metrics import Metrics

            self.metrics = Metrics(track_operations=bool(monitoring["track_database_metrics"]))
        self.service = make_service(
            source,
            auth_config=auth_config,
            authentication_required=authentication_required,
            metrics=self.metrics,
            expose_bulk=bool(dataflow["expose_bulk_operations"]),
            expose_analytics=bool(dataflow["expose_analytics"]),
        )

    def __repr__(self) -> str:
        return f"<Nexus {self.title!r}>"

    def register(
        self,
        name: str,
        workflow: WorkflowBuilder | Workflow,
        inputs: Mapping[str, str | Sequence[str]] | None = None,
    ) -> None:
        """Serve ``workflow`` under ``name`` on every channel.

        A caller gives the workflow's inputs and nothing else: its ``{{placeholders}}``
        (register the ``WorkflowBuilder``; each call fills them, converted to the type of what
        they stand for) and the node parameters ``inputs`` declares, input name ->
        ``"node_id.parameter"`` (or a list of them), e.g. ``{"limit": "list.limit"}``.
        """
        self.service.register(name, workflow, inputs)
        if "api" in self.__dict__:
            from kailash.servers.gateway.rest import add_execute_route

            add_execute_route(self.api, self.service, self.service.executable(name))

    @cached_property
    def mcp(self) -> MCPChannel:
        """The MCP channel: tools for model operations, nodes and workflows."""
        if not self.enable_mcp:
            raise GatewayConfigurationError(f"{self.title}: MCP is off (enable_mcp=False)")
        from nexus.channels.mcp import MCPChannel

        return MCPChannel(self.service, self.title, model_tools=self.auto_generate_mcp_tools)

    @cached_property
    def api(self) -> FastAPI:
        """The ASGI app ``run()`` serves: REST when enable_api, MCP at /mcp when enable_mcp."""
        from nexus.channels.rest import build_api

        return build_api(
            self.service,
            title=self.title,
            auto_generate_endpoints=self.auto_generate_endpoints,
            serve_operations=self.enable_api,
            metrics=self.metrics,
            mcp_server=self.mcp.server if self.enable_mcp else None,
        )

    def run(self, host: str = "127.0.0.1", port: int = 8000, **options: Any) -> None:
        """Serve the API with uvicorn until interrupted (``options`` go to ``uvicorn.run``).

        Without authentication only a loopback address is served (with a warning that the API
        is open), unless the Nexus was built with ``allow_anonymous=True``.
        """
        import uvicorn

        check_exposure(self.service.auth, host, self.allow_anonymous, options, self.title)

        uvicorn.run(self.api, host=host, port=port, **options)

    start = run

    async def serve_mcp_stdio(self, credentials: Credentials | None = None) -> None:
        """Serve MCP over stdin/stdout; ``credentials`` authenticate every tool call."""
        await self.mcp.serve_stdio(credentials or Credentials())
