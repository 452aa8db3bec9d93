"""``/ws/changes`` over a real server: committed writes pushed, under the same auth and tenancy."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.nexus.conftest import acting_for, bearer, new_tenant


def ws_url(served, **query: str) -> str:
    base = served.url.replace("http://", "ws://") + "/ws/changes"
    return f"{base}?{urlencode(query)}" if query else base


@contextmanager
def listening(served, headers: dict | None = None, **query: str) -> Iterator[ClientConnection]:
    with connect(ws_url(served, **query), additional_headers=headers or {}) as ws:
        hello = receive(ws)
        assert hello["type"] == "subscribed", hello
        yield ws


def receive(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=10))


def order(total: float = 5.0) -> dict[str, Any]:
    return {"ref": uuid.uuid4().hex[:12], "customer_id": 1, "total": total}


def refused(served, headers: dict | None = None, **query: str) -> tuple[int, dict]:
    with (
        pytest.raises(InvalidStatus) as info,
        connect(ws_url(served, **query), additional_headers=headers or {}),
    ):
        pass
    response = info.value.response
    return response.status_code, json.loads(response.body)


def test_a_client_hears_its_tenants_committed_writes(orders_served, orders_api):
    mine, theirs = new_tenant(), new_tenant()
    with listening(orders_served, acting_for(mine), models="orders") as ws:
        # Another tenant's write is never heard; the next message is this tenant's.
        orders_api.post("/api/orders", json=order(), headers=acting_for(theirs))
        created = orders_api.post("/api/orders", json=order(), headers=acting_for(mine)).json()
        change = receive(ws)
        assert change["type"] == "change"
        assert (change["model"], change["action"], change["ids"]) == (
            "Order",
            "create",
            [created["id"]],
        )
        assert change["tenant_id"] == mine and change["count"] == 1
        oid = created["id"]
        orders_api.patch(
            f"/api/orders/{oid}", json={"total": 9.0, "version": 1}, headers=acting_for(mine)
        )
        orders_api.delete(f"/api/orders/{oid}", headers=acting_for(mine))
        rows = {"operation": "create", "data": [order(), order()]}
        orders_api.post("/api/orders/bulk", json=rows, headers=acting_for(mine))
        heard = [receive(ws) for _ in range(3)]
        assert [(c["action"], c["ids"], c["count"]) for c in heard] == [
            ("update", [oid], 1),
            ("soft_delete", [oid], 1),
            ("bulk_create", None, 2),
        ]


def test_a_refused_write_is_not_heard(orders_served, orders_api):
    mine = new_tenant()
    with listening(orders_served, acting_for(mine)) as ws:
        taken = order()
        assert (
            orders_api.post("/api/orders", json=taken, headers=acting_for(mine)).status_code == 201
        )
        assert receive(ws)["action"] == "create"
        again = orders_api.post("/api/orders", json=taken, headers=acting_for(mine))
        assert again.status_code == 409
        later = orders_api.post("/api/orders", json=order(), headers=acting_for(mine)).json()
        assert receive(ws)["ids"] == [later["id"]]  # the next message: the refusal was not told


def test_a_browser_client_authenticates_with_query_parameters(orders_served, orders_api):
    tenant = new_tenant()
    token = bearer({"sub": "web", "roles": ["viewer"], "tenant_id": tenant})["Authorization"]
    with listening(orders_served, token=token.removeprefix("Bearer ")) as ws:
        orders_api.post("/api/orders", json=order(), headers=acting_for(tenant))
        assert receive(ws)["tenant_id"] == tenant
    with listening(orders_served, api_key="key-admin-0001", tenant=tenant, models="Order") as ws:
        orders_api.post("/api/orders", json=order(), headers=acting_for(tenant))
        assert receive(ws)["model"] == "Order"


def test_refusals_answer_the_handshake_like_a_request(orders_served):
    assert refused(orders_served)[0] == 401
    status, body = refused(orders_served, {"X-API-Key": "key-wrong-0001"})
    assert status == 401 and body["error"] == "unauthenticated"
    nobody = bearer({"sub": "x", "roles": ["nobody"], "tenant_id": "t1"})
    assert refused(orders_served, nobody, models="orders")[0] == 403
    assert refused(orders_served, nobody)[0] == 403  # no model it may see
    status, body = refused(orders_served, acting_for(None), models="orders")
    assert status == 400 and body["error"] == "tenant_required"
    status, body = refused(orders_served, acting_for("t1"), models="ordres")
    assert status == 422 and "no model 'ordres'" in body["message"]
