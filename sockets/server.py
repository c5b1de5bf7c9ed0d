"""The Socket.IO server: python-socketio on the aiohttp app, fanned out through Redis.

Connect authenticates once (JWT in ``auth.token`` or an ``Authorization`` header) and joins the
socket to its rooms; every replica runs the same handlers and reaches every client through the
Redis manager. Its lifetimes (pushing through Redis, accepting sockets) are put in order by the
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

import redis.asyncio as aioredis
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
from sockets import agent, customer
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
LISTEN_RETRY_FIRST_SECONDS = 0.1  # the fan-out listener's back-off after Redis fails...
LISTEN_RETRY_MAX_SECONDS = 2.0  # ...doubling up to this, so it is back within ~2 s of Redis
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


class RedisManager(socketio.AsyncRedisManager):
    """python-socketio's Redis manager, started with the replica and closed with it.

    It fills in only the two hooks python-socketio's pub/sub manager documents for a backend,
    :meth:`_publish` and :meth:`_listen`, over one Redis client of its own for the manager's
    life (its pool reconnects by itself): the stock 5.18 manager makes a new client whenever its
    publisher or listener (re)connects and drops the previous one with its connections open.
    :meth:`start` listens from the replica's start rather than from the first socket connection,
    and :meth:`aclose` stops the listener and the publisher and closes the connections.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: aioredis.Redis | None = None
        self._subscription: Any = None
        self._outbox: asyncio.Queue = asyncio.Queue(maxsize=100_000)
        self._publisher: asyncio.Task | None = None
        self._resyncs: set[asyncio.Task] = set()

    def _connection(self) -> aioredis.Redis:
        if self._client is None:
            self._client = aioredis.Redis.from_url(self.redis_url, **self.redis_options)
        return self._client

    async def _publish(self, data: Any) -> None:
        """Queue for the one publisher task: no pool to exhaust, and cross-replica messages keep
        their order (an ``enter_room`` stays ahead of the emit that follows it)."""
        if self._publisher is None:
            self._publisher = asyncio.get_running_loop().create_task(self._run_publisher(), name="sio-publisher")
        try:
            self._outbox.put_nowait(data)
        except asyncio.QueueFull:
            metrics.SOCKET_BROADCASTS_DROPPED.inc()
            log.error("socket broadcast dropped: the publish queue is full (Redis unreachable?)")

    async def _run_publisher(self) -> None:
        backoff = 0.05
        while True:
            batch = [await self._outbox.get()]
            while not self._outbox.empty() and len(batch) < 500:
                batch.append(self._outbox.get_nowait())
            payloads = [self.json.dumps(d) for d in batch]
            while True:
                try:
                    async with self._connection().pipeline(transaction=False) as pipe:
                        for payload in payloads:
                            pipe.publish(self.channel, payload)
                        await pipe.execute()
                    backoff = 0.05
                    break
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # Retried until Redis answers: a broadcast is delivered at least once (clients
                    # de-duplicate by message id / seq, and chat:sync fills any gap).
                    log.warning("socket broadcast publish failed; retrying", exc_info=True)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)

    async def _listen(self) -> AsyncIterator[bytes]:
        """The channel's messages. After a failure the subscription is renewed on the same client
        with a short back-off (0.1 s doubling to 2 s, not the stock 1 s to 60 s), and every time it
        comes back the sockets of this replica in chat sessions get ``chat:resync``: pub/sub kept
        nothing published while this replica was not subscribed, so the clients fetch what they
        missed with ``chat:sync`` (later pushes arrive live; clients de-duplicate by ``seq``)."""
        channel = self.channel.encode()
        delay = LISTEN_RETRY_FIRST_SECONDS
        lost = False
        while True:
            subscription = self._subscription = self._connection().pubsub(ignore_subscribe_messages=True)
            try:
                await subscription.subscribe(self.channel)
                if lost:
                    log.warning("socket fan-out subscription restored; asking clients in chats to resync")
                    self._resync_soon()
                lost = False
                delay = LISTEN_RETRY_FIRST_SECONDS
                async for message in subscription.listen():
                    if message["channel"] == channel and message["type"] == "message" and "data" in message:
                        yield message["data"]
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not lost:
                    log.warning("socket fan-out subscription lost (%s: %s); retrying", type(exc).__name__, exc)
                lost = True
                metrics.SOCKET_FANOUT_INTERRUPTIONS.inc()
                with contextlib.suppress(Exception):
                    await subscription.aclose()
                await asyncio.sleep(delay)
                delay = min(delay * 2, LISTEN_RETRY_MAX_SECONDS)

    def _resync_soon(self) -> None:
        task = asyncio.get_running_loop().create_task(self.resync_local_sessions())
        self._resyncs.add(task)
        task.add_done_callback(self._resyncs.discard)

    async def resync_local_sessions(self) -> int:
        """``chat:resync {session_ids}`` to every socket of this replica in a session room
        (sent locally, not through Redis); returns how many sockets were told."""
        told = 0
        for namespace, rooms in list(self.rooms.items()):
            per_socket: dict[str, list[str]] = {}
            for room, members in list(rooms.items()):
                if isinstance(room, str) and room.startswith(SESSION_ROOM_PREFIX):
                    for sid in list(members):
                        per_socket.setdefault(sid, []).append(room[len(SESSION_ROOM_PREFIX) :])
            for sid, session_ids in per_socket.items():
                with contextlib.suppress(Exception):
                    await self.server.emit(
                        "chat:resync",
                        {"session_ids": sorted(session_ids)},
                        to=sid,
                        namespace=namespace,
                        ignore_queue=True,
                    )
                    told += 1
        metrics.SOCKET_RESYNCS.inc(told)
        return told

    def start(self, sio: socketio.AsyncServer) -> None:
        """Listen from now on, not from the first socket connection."""
        if not sio.manager_initialized:
            sio.manager_initialized = True
            self.initialize()

    async def aclose(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
        listener = getattr(self, "thread", None)  # the listening task initialize() started
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.aclose()
        if self._client is not None:
            await self._client.aclose()


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
    sio = SocketServer(
        async_mode="aiohttp",
        # Pub/sub channels ignore the database number: name it, so deployments sharing a Redis
        # on different databases do not hear each other's broadcasts.
        client_manager=RedisManager(
            settings.redis_url,
            channel=f"support-socketio:{settings.redis_database}",
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
    _register_connection_handlers(sio, state, settings)
    customer.register_all(sio, state)
    agent.register_all(sio, state)
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
    yield
    for sid in list(state.sockets):
        with contextlib.suppress(Exception):
            await sio.disconnect(sid, namespace=state.sockets[sid][0])
    try:  # engine.io's ping monitor; bounded, so a stuck monitor cannot hold the shutdown
        await asyncio.wait_for(sio.shutdown(), ENGINE_SHUTDOWN_SECONDS)
    except asyncio.TimeoutError:
        log.warning("engine.io service task did not stop in time; cancelled")
