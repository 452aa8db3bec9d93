"""Prometheus metrics of one gateway: its HTTP requests and, optionally, its operations."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)


class Metrics:
    """A registry of its own per gateway, so two gateways in one process never mix counts."""

    def __init__(self, track_operations: bool = True) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gateway_requests_total",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gateway_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            registry=self.registry,
        )
        self.operations: Counter | None = None
        self.operation_latency: Histogram | None = None
        if track_operations:
            self.operations = Counter(
                "gateway_operations_total",
                "Model operations, node and workflow runs by resource, operation and outcome.",
                ["resource", "operation", "outcome"],
                registry=self.registry,
            )
            self.operation_latency = Histogram(
                "gateway_operation_duration_seconds",
                "Time spent running the node or workflow of an operation.",
                ["resource", "operation"],
                registry=self.registry,
            )

    def observe_operation(
        self, resource: str, operation: str, outcome: str, seconds: float
    ) -> None:
        if self.operations is not None and self.operation_latency is not None:
            self.operations.labels(resource, operation, outcome).inc()
            self.operation_latency.labels(resource, operation).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RequestMetrics:
    """ASGI middleware counting requests by the route template they matched."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def sending(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            # The router records the matched route in the scope, so paths with ids share a label.
            path = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, path, str(status)).inc()
            self.metrics.latency.labels(method, path).observe(time.perf_counter() - start)
