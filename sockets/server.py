"""The Socket.IO server: python-socketio on the aiohttp app, fanned out through Redis.

Connect authenticates once (JWT in ``auth.token`` or an ``Authorization`` header) and joins the
socket to its rooms; every replica runs the same handlers and reaches every client through the
fan-out manager (sockets/fanout.py), which sends a push only to the replicas with members in its
room. Its lifetimes (pushing through Redis, accepting sockets) are put in order by the
composition root, app/server.py; the background work around sockets (presence heartbeats, chat
timers) is in the duty table, app/duties.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import socketio
from aiohttp import web
from engineio.async_drivers import aiohttp as eio_aiohttp

from app import metrics
from app.auth import STAFF, Principal, bearer_token
from app.config import Settings
from app.context import CONTEXT
from app.errors import DomainError
from app.health import HEALTH
from app.live import AGENT_NS, CUSTOMER_NS, session_room
from sockets import agent, customer, lean
from sockets.fanout import ReplicaFanout
from app.validation import value_problem
from sockets.common import SocketPacket, SocketServer, SocketState, error, ok, refuse, register_unknown

log = logging.getLogger("support.sockets")
SOCKETS = web.AppKey("sockets", socketio.AsyncServer)
STATE = web.AppKey("socket_state", SocketState)
ROLES = {CUSTOMER_NS: frozenset({"customer"}), AGENT_NS: STAFF}
TOKEN_GRACE_SECONDS = 5.0  # a socket outlives its token's exp by this much, for auth:refresh
# The manager's own Redis client: stale connections found before use, refused connects given up fast.
MANAGER_REDIS_OPTIONS = {"health_check_interval": 5, "socket_keepalive": True, "socket_connect_timeout": 2}
_EXPIRING: set[asyncio.Task] = set()
SESSION_ROOM_PREFIX = session_room("")
ENGINE_SHUTDOWN_SECONDS = 5.0


def _websocket_class(compress: bool) -> type:
    """engine.io's aiohttp websocket with permessage-deflate as a setting (aiohttp enables it)."""

    class WebSocket(eio_aiohttp.WebSocket):
        async def __call__(self, environ: dict) -> web.WebSocketResponse:
            request = environ["aiohttp.request"]
            self._sock = web.WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=compress)
            await self._sock.prepare(request)
            self.environ = environ
            await self.handler(self)
            return self._sock

    return WebSocket


def origin_check(settings: Settings) -> Any:
    """What python-engineio's ``cors_allowed_origins`` takes: ``*``, or a check that admits the
    configured origins (customers' sites embedding the widget) *and* this service's own origin
    (the console and the demo page), which engineio drops as soon as a list is given."""
    if settings.cors_any_origin:
        return "*"
    configured = frozenset(settings.cors_allowed_origins or ())

    def allowed(origin: str | None, environ: dict) -> bool:
        if origin in configured:
            return True
        host = environ.get("HTTP_X_FORWARDED_HOST") or environ.get("HTTP_HOST", "")
        scheme = environ.get("HTTP_X_FORWARDED_PROTO") or environ.get("wsgi.url_scheme", "http")
        return origin == f"{scheme.split(',')[0].strip()}://{host.split(',')[0].strip()}"

    return allowed


def create_socket_server(settings: Settings) -> socketio.AsyncServer:
    origins = origin_check(settings)
    server_class = lean.LeanSocketServer if settings.websocket_fast_path else SocketServer
    sio = server_class(
        async_mode="aiohttp",
        # Pub/sub channels ignore the database number: name it, so deployments sharing a Redis
        # on different databases do not hear each other's broadcasts.
        client_manager=ReplicaFanout(
            settings.redis_url,
            prefix=f"support-socketio:{settings.redis_database}",
            redis_options=MANAGER_REDIS_OPTIONS,
        ),
        serializer=SocketPacket,  # bounds nesting before a packet is decoded
        cors_allowed_origins=origins,
        ping_interval=settings.websocket_heartbeat_interval / 1000,
        ping_timeout=max(5, settings.websocket_heartbeat_interval / 2000),
        max_http_buffer_size=1_000_000,
        http_compression=settings.websocket_compression,
        logger=False,
        engineio_logger=False,
    )
    sio.eio._async = {**sio.eio._async, "websocket": _websocket_class(settings.websocket_compression)}
    return sio


def attach_sockets(app: web.Application, settings: Settings) -> socketio.AsyncServer:
    sio = create_socket_server(settings)
    state = SocketState()
    state.lag.max_lag = settings.socket_shed_lag_ms / 1000 if settings.socket_shed_lag_ms else float("inf")
    _register_connection_handlers(sio, state, settings)
    customer.register_all(sio, state)
    agent.register_all(sio, state)
    if isinstance(sio, lean.LeanSocketServer):  # WEBSOCKET_FAST_PATH: websocket-only clients go lean
        sio.lean = lean.LeanEngine(sio, compress=settings.websocket_compression)
        sio.lean.attach(app, settings.websocket_endpoint)
    else:
        sio.attach(app, socketio_path=settings.websocket_endpoint.strip("/"))
    app[SOCKETS] = sio
    app[STATE] = state
    return sio


def _principal(ctx: Any, environ: dict, auth: Any) -> Principal:
    token = auth.get("token") if isinstance(auth, dict) else None
    token = token or bearer_token(environ.get("HTTP_AUTHORIZATION"))
    return ctx.verifier.verify(token)


def _register_connection_handlers(sio: socketio.AsyncServer, state: SocketState, settings: Settings) -> None:
    for namespace, module in ((CUSTOMER_NS, customer), (AGENT_NS, agent)):
        _connection_handlers(sio, state, settings, namespace, module)
        _token_handlers(sio, state, namespace)
        register_unknown(sio, state, namespace)


def _watch_expiry(
    sio: socketio.AsyncServer, state: SocketState, sid: str, namespace: str, principal: Principal
) -> None:
    """End the socket ``TOKEN_GRACE_SECONDS`` after its token's ``exp`` unless ``auth:refresh``
    brought a fresh token first (events in between are answered ``token_expired``)."""
    previous = state.expiry.pop(sid, None)
    if previous is not None:
        previous.cancel()
    if principal.expires_at is None:
        return
    loop = asyncio.get_running_loop()

    async def expire() -> None:
        state.expiry.pop(sid, None)
        if sid not in state.sockets:
            return
        with contextlib.suppress(Exception):
            await sio.emit(
                "auth:expired",
                {"code": "token_expired", "message": "Your token has expired"},
                to=sid,
                namespace=namespace,
                ignore_queue=True,
            )
            await sio.disconnect(sid, namespace=namespace)

    def fire() -> None:
        task = loop.create_task(expire())
        _EXPIRING.add(task)
        task.add_done_callback(_EXPIRING.discard)

    delay = max(0.0, principal.expires_at - time.time()) + TOKEN_GRACE_SECONDS
    state.expiry[sid] = loop.call_later(delay, fire)


async def _resync_the_other_parties(sio: socketio.AsyncServer, ctx: Any, sid: str, namespace: str) -> None:
    """A client that (re)connects may have had messages acknowledged by a replica that died
    before fanning them out: the other parties of its open chats get ``chat:resync`` for them."""
    for room in sio.rooms(sid, namespace=namespace):
        if isinstance(room, str) and room.startswith(SESSION_ROOM_PREFIX):
            session_id = room[len(SESSION_ROOM_PREFIX) :]
            with contextlib.suppress(Exception):  # best effort: Redis may be away just now
                await ctx.live.to_session(session_id, "chat:resync", {"session_ids": [session_id]}, skip_sid=sid)


def _token_handlers(sio: socketio.AsyncServer, state: SocketState, namespace: str) -> None:
    async def refresh(sid: str, *args: Any) -> dict:
        """``auth:refresh {token}``: a fresh token for the same user, without reconnecting."""
        entry = state.sockets.get(sid)
        if entry is None or state.ctx is None:
            return error("unauthorized", "Not connected")
        wait_ms = state.spend(sid)
        if wait_ms:
            return error("rate_limited", "Too many events from this connection; slow down", {"retry_after_ms": wait_ms})
        data = args[0] if len(args) == 1 else None
        token = data.get("token") if isinstance(data, dict) and set(data) == {"token"} else None
        if not isinstance(token, str) or not token or len(token) > 8192 or value_problem(token):
            return error("validation_failed", "auth:refresh takes {token}", {"token": ["A token string is required."]})
        try:
            principal = state.ctx.verifier.verify(token)
        except DomainError as exc:
            return error("unauthorized", exc.detail)
        current = state.sockets.get(sid)
        if current is None:
            return error("unauthorized", "Not connected")
        if principal.user_id != current[1].user_id or principal.role not in ROLES[namespace]:
            return error("unauthorized", "The token names another user or role")
        state.sockets[sid] = (namespace, principal)
        _watch_expiry(sio, state, sid, namespace, principal)
        return ok({"expires_at": dt.datetime.fromtimestamp(principal.expires_at, dt.timezone.utc)})

    sio.on("auth:refresh", refresh, namespace=namespace)


def _connection_handlers(
    sio: socketio.AsyncServer, state: SocketState, settings: Settings, namespace: str, module: Any
) -> None:
    async def connect(sid: str, environ: dict, auth: Any = None) -> None:
        ctx = state.ctx
        if ctx is None:
            raise refuse("The server is starting; try again", "server_full")
        if state.count() >= settings.websocket_max_sessions:
            raise refuse("This server is full; try again shortly", "server_full")
        try:
            principal = _principal(ctx, environ, auth)
        except DomainError as exc:
            raise refuse(exc.detail, exc.code) from None
        if principal.role not in ROLES[namespace]:
            raise refuse(f"Role {principal.role!r} may not connect to {namespace}", "forbidden")
        state.sockets[sid] = (namespace, principal)
        try:
            await ctx.live.register_socket(namespace, principal.user_id, sid)
            await module.on_connected(sio, ctx, principal, sid)
        except BaseException:
            state.sockets.pop(sid, None)
            await ctx.live.unregister_socket(namespace, principal.user_id, sid)
            raise
        metrics.SOCKET_CONNECTIONS.labels(namespace=namespace).inc()
        _watch_expiry(sio, state, sid, namespace, principal)
        await _resync_the_other_parties(sio, ctx, sid, namespace)

    async def disconnect(sid: str, *args: Any) -> None:
        entry = state.sockets.pop(sid, None)
        state.forget(sid)
        if entry is None or state.ctx is None:
            return
        metrics.SOCKET_CONNECTIONS.labels(namespace=namespace).dec()
        ctx, principal = state.ctx, entry[1]
        await ctx.live.unregister_socket(namespace, principal.user_id, sid)
        if namespace == AGENT_NS:
            await agent.on_disconnected(ctx, principal)

    sio.on("connect", connect, namespace=namespace)
    sio.on("disconnect", disconnect, namespace=namespace)


def start_pushing(sio: socketio.AsyncServer) -> None:
    """Broadcast through Redis from now on (the live runtime's start, app/server.py)."""
    sio.manager.start(sio)


async def stop_pushing(sio: socketio.AsyncServer) -> None:
    await sio.manager.aclose()


async def serving(app: web.Application) -> AsyncIterator[None]:
    """Lifetime (app/server.py): accept sockets, and disconnect them all at the stop."""
    ctx = app[CONTEXT]
    sio, state = app[SOCKETS], app[STATE]
    state.ctx = ctx

    async def websocket_health() -> dict:
        return {
            "connections": state.count(),
            "max_sessions": ctx.settings.websocket_max_sessions,
            "path": ctx.settings.websocket_endpoint,
        }

    app[HEALTH].register("websocket", websocket_health)
    state.lag.start()
    yield
    await state.lag.stop()
    for sid in list(state.sockets):
        with contextlib.suppress(Exception):
            await sio.disconnect(sid, namespace=state.sockets[sid][0])
    try:  # engine.io's ping monitor; bounded, so a stuck monitor cannot hold the shutdown
        await asyncio.wait_for(sio.shutdown(), ENGINE_SHUTDOWN_SECONDS)
    except asyncio.TimeoutError:
        log.warning("engine.io service task did not stop in time; cancelled")
