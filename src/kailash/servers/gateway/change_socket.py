"""``/ws/changes``: each committed write, pushed to WebSocket clients under the REST rules.

A client connects to ``/ws/changes`` (``?models=orders,products`` to choose; by default every
model it may list) with the credentials a request would carry: headers, or, since a browser
cannot set headers on a WebSocket, the query parameters ``api_key``, ``token`` (a bearer
token) and ``tenant``. It is refused like a request (an HTTP 401, 403, 400 or 422 answer to
the handshake, JSON body) or receives ``{"type": "subscribed", "models": [...]}`` and then a
``{"type": "change", "model", "action", "ids", "count", "tenant_id", "at"}`` message per
committed write of those models — on a multi-tenant model, its own tenant's writes only. A
client that falls more than ``QUEUE`` messages behind loses the oldest news and is told
``{"type": "dropped", "count": n}``; it should then re-read what it shows.
"""

import asyncio
from typing import Annotated, Any, Optional

from fastapi import FastAPI, Query, WebSocket
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.websockets import WebSocketDisconnect

from kailash.servers.gateway.auth import Caller
from kailash.servers.gateway.errors import GatewayError
from kailash.servers.gateway.protocol import ChangeSource, ModelInfo
from kailash.servers.gateway.schemas import split_names
from kailash.servers.gateway.service import GatewayService

#: Messages a slow client may have waiting before older ones are dropped.
QUEUE = 1000


def add_change_route(app: FastAPI, service: GatewayService) -> None:
    """Serve ``/ws/changes`` when the data source tells of its changes."""
    source = service.source
    if not isinstance(source, ChangeSource):
        return

    @app.websocket("/ws/changes")
    async def changes(
        websocket: WebSocket,
        models: Annotated[Optional[str], Query()] = None,
        api_key: Annotated[Optional[str], Query()] = None,
        token: Annotated[Optional[str], Query()] = None,
        tenant: Annotated[Optional[str], Query()] = None,
    ) -> None:
        try:
            headers = _headers(service, websocket.headers, api_key, token, tenant)
            caller = service.resolve(headers)
            watched = _watched(service, caller, models)
        except GatewayError as exc:
            await _refuse(websocket, exc)
            return
        await websocket.accept()
        feed = _Feed(asyncio.get_running_loop(), caller, watched)
        unsubscribe = source.subscribe_changes(feed.offer)
        try:
            plurals = [m.plural for m in watched.values()]
            await websocket.send_json({"type": "subscribed", "models": plurals})
            await _serve(websocket, feed)
        finally:
            unsubscribe()


def _headers(
    service: GatewayService,
    headers: Headers,
    api_key: str | None,
    token: str | None,
    tenant: str | None,
) -> MutableHeaders:
    """The request's headers, with credentials given as query parameters added."""
    auth = service.auth
    found = headers.mutablecopy()
    for name, value in (
        (auth.api_key_header, api_key),
        ("authorization", f"Bearer {token}" if token else None),
        (auth.tenant_header, tenant),
    ):
        if value is not None:
            found[name] = value
    return found


def _watched(service: GatewayService, caller: Caller, names: str | None) -> dict[str, ModelInfo]:
    """The models whose changes the caller gets, by model name."""
    served = service.models()
    if names is None:
        chosen = [
            m
            for m in served
            if "list" in service.operations(m)
            and _may(service, caller, m)
            and (caller.tenant_id is not None or not m.tenant_scoped)
        ]
        if not chosen:
            raise GatewayError(403, "forbidden", "there is no model whose changes you may see")
        return {m.name: m for m in chosen}
    by_name = {key: m for m in served for key in (m.name, m.plural)}
    chosen = []
    for name in split_names(names):
        model = by_name.get(name)
        if model is None:
            known = ", ".join(m.plural for m in served)
            raise GatewayError(
                422,
                "validation_error",
                f"models: no model '{name}'; known: {known}",
                field="models",
            )
        service.authorize(caller, model.name, "list")
        chosen.append(model)
    service.require_tenant(caller, chosen)
    return {m.name: m for m in chosen}


def _may(service: GatewayService, caller: Caller, model: ModelInfo) -> bool:
    try:
        service.authorize(caller, model.name, "list")
    except GatewayError as exc:
        if exc.status != 403:
            raise  # unauthenticated: say so, rather than "nothing to see"
        return False
    return True


async def _refuse(websocket: WebSocket, error: GatewayError) -> None:
    """Answer the handshake with the error, as HTTP where the server can, else a close code."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        response = JSONResponse(error.body(), status_code=error.status)
        await websocket.send_denial_response(response)
        return
    await websocket.close(code=4000 + error.status, reason=error.message[:120])


class _Feed:
    """Changes for one client, handed from the writing thread to the connection's loop."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, caller: Caller, watched: dict[str, ModelInfo]
    ) -> None:
        self.loop = loop
        self.tenant = caller.tenant_id
        self.watched = watched
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE)
        self.dropped = 0

    def offer(self, change: dict[str, Any]) -> None:
        """Called on the writing thread: keep the change if this client may see it."""
        model = self.watched.get(change["model"])
        if model is None or (model.tenant_scoped and change["tenant_id"] != self.tenant):
            return
        self.loop.call_soon_threadsafe(self._put, change)

    def _put(self, change: dict[str, Any]) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(change)


async def _serve(websocket: WebSocket, feed: _Feed) -> None:
    """Send changes until the client goes away."""

    async def send() -> None:
        while True:
            change = await feed.queue.get()
            if feed.dropped:
                dropped, feed.dropped = feed.dropped, 0
                await websocket.send_json({"type": "dropped", "count": dropped})
            await websocket.send_json({"type": "change", **change})

    async def listen() -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass  # clients have nothing to say; anything they send is ignored

    tasks = [asyncio.create_task(send()), asyncio.create_task(listen())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = task.exception()
            if error is not None and not isinstance(error, (WebSocketDisconnect, OSError)):
                raise error
    finally:
        for task in tasks:
            task.cancel()
