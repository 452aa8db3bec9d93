"""The CLI's HTTP client: the same commands against a running Nexus or gateway."""

from __future__ import annotations

import json
from typing import Any

import httpx

from kailash.servers.gateway.auth import Credentials
from kailash.servers.gateway.errors import GatewayError
from kailash.servers.gateway.protocol import ModelInfo


class RemoteClient:
    """Sends each command as the REST request it stands for; errors come back as raised."""

    def __init__(
        self, url: str, credentials: Credentials, api_key_header: str, tenant_header: str
    ) -> None:
        headers = {}
        if credentials.api_key:
            headers[api_key_header] = credentials.api_key
        if credentials.bearer:
            headers["Authorization"] = f"Bearer {credentials.bearer}"
        if credentials.tenant:
            headers[tenant_header] = credentials.tenant
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=30)

    def call(self, model: ModelInfo, op: str, raw: dict[str, Any]) -> Any:
        base = f"/api/{model.plural}"
        values = dict(raw)
        if op == "create":
            return self._send("POST", base, json=values)
        if op == "list":
            return self._send("GET", base, params=_query(values))
        if op == "audit":
            return self._send("POST", f"{base}/audit", json=values)
        item = f"{base}/{values.pop('id')}"
        if op == "read":
            return self._send("GET", item, params=_query(values))
        if op == "update":
            return self._send("PATCH", item, json=values)
        if op == "restore":
            return self._send("POST", f"{item}/restore")
        assert op == "delete", f"the CLI has no command for {op}"
        return self._send("DELETE", item)

    def execute(self, name: str, raw: dict[str, Any]) -> Any:
        return self._send("POST", f"/api/workflows/{name}/execute", json=raw)

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise GatewayError(503, "unreachable", f"{self.http.base_url}: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            body = {"error": "bad_response", "message": response.text[:200]}
        if response.is_success:
            return body
        raise GatewayError(
            response.status_code,
            body.get("error", "error"),
            body.get("message", response.reason_phrase),
            field=body.get("field"),
        )


def _query(values: dict[str, Any]) -> dict[str, str]:
    """List arguments as the query parameters of ``GET /api/<plural>``."""
    query = {}
    for name, value in values.items():
        if name in ("filter", "sort") and not isinstance(value, str):
            query[name] = json.dumps(value)
        elif name == "fields":
            query[name] = ",".join(value)
        elif isinstance(value, bool):
            query[name] = "true" if value else "false"
        else:
            query[name] = str(value)
    return query
