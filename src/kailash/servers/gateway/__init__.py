"""The REST gateway over a data source's models, and the protocol a data source satisfies."""

from kailash.servers.gateway.errors import GatewayConfigurationError, GatewayError
from kailash.servers.gateway.protocol import DataSource, FieldInfo, ModelInfo, Problem
from kailash.servers.gateway.server import Gateway, create_gateway

__all__ = [
    "DataSource",
    "FieldInfo",
    "Gateway",
    "GatewayConfigurationError",
    "GatewayError",
    "ModelInfo",
    "Problem",
    "create_gateway",
]
