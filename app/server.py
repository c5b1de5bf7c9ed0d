"""The composition root: one replica's aiohttp app with REST, Socket.IO and gRPC on one event
loop (uvloop). The only module of ``app`` that imports transports: it puts them together, and it
alone owns the app's lifetimes. They start top to bottom and stop in reverse (aiohttp's
``cleanup_ctx``):

1. context      the AppContext (database, Redis, cipher, ...), opened here or handed in by tests
2. live runtime Socket.IO broadcasts through Redis, ``ctx.live`` pushing, the queue notifier
3. duties       the Leader connection and the duty table (app/duties.py)
4. followers    the one follower of ``support_events`` (app/follower.py): ticket live feed,
                Kafka relay, search sync, subscriptions hub
5. sockets      accepting Socket.IO connections (all disconnected first at the stop)
6. gRPC         served on GRPC_SERVER_PORT, drained at the stop
7. Kafka        the consumer and the ``kafka`` readiness component (with KAFKA_BOOTSTRAP_SERVERS)

:func:`build_rest` is the REST routes with the context and the duties only (tests and tools).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
from collections.abc import AsyncIterator, Awaitable, Callable

import socketio
import uvloop
from aiohttp import web

from app.clock import Clock
from app.config import Settings
from app.context import CONTEXT, AppContext, open_context
from app.duties import Duties
from app.follower import EventFollower, Listener
from app.health import HEALTH, Health
from app.kafka.workers import KafkaWorkers
from app.leader import Leader
from app.search.sync import SearchFollower
from app.services import departments
from app.services.events_api import EventHub
from app.services.live_feed import TicketLiveFeed
from grpc_server.server import GrpcServer
from rest.app import create_app
from sockets.server import SOCKETS, STATE, attach_sockets, serving, start_pushing, stop_pushing

Lifetime = Callable[[web.Application], AsyncIterator[None]]
GRPC = web.AppKey("grpc", GrpcServer)
LEADER = web.AppKey("leader", Leader)
HUB = web.AppKey("event_hub", EventHub)
KAFKA = web.AppKey("kafka", KafkaWorkers)
GRPC_GRACE_SECONDS = 5.0


# `serve` listens on every interface (a container's port is published); `dev` on 127.0.0.1 by default.
SERVE_HOST = "0.0.0.0"


def build(
    settings: Settings, *, clock: Clock | None = None, context: AppContext | None = None, grpc_host: str = SERVE_HOST
) -> web.Application:
    """A whole replica: REST, Socket.IO and gRPC with everything they run in the background."""
    app = create_app(settings)
    sio = attach_sockets(app, settings)
    app.cleanup_ctx.extend(
        [
            _context(settings, clock, context),
            _live_runtime(sio),
            _duties(settings, sockets=True),
            _followers(settings, sockets=True, grpc=True),
            serving,
            _grpc(settings, grpc_host),
            _kafka(settings),
        ]
    )
    app.on_shutdown.append(_sockets_leave_first)
    return app


async def _sockets_leave_first(app: web.Application) -> None:
    """``on_shutdown`` (SIGTERM): tell every socket to go before the HTTP drain begins.

    When a stop begins aiohttp stops reading every open connection (``RequestHandler.close``:
    data that arrives is dropped) and then waits up to the shutdown timeout for each handler,
    so a websocket left open sits deaf for 10-20 s: the client's events time out, its pings go
    unanswered. Disconnected now, clients reconnect to another replica at once and resend what
    was not acknowledged (same ``client_msg_id``: stored once). aiohttp's own advice for
    websockets at shutdown is the same (close them in ``on_shutdown``)."""
    sio, state = app[SOCKETS], app[STATE]
    gate = asyncio.Semaphore(64)

    async def leave(sid: str, namespace: str) -> None:
        async with gate:
            with contextlib.suppress(Exception):
                await sio.disconnect(sid, namespace=namespace)

    await asyncio.gather(*(leave(sid, entry[0]) for sid, entry in list(state.sockets.items())))


def build_rest(settings: Settings, *, clock: Clock | None = None, context: AppContext | None = None) -> web.Application:
    """The REST routes with the context and the duties and followers that need no sockets or
    gRPC (no live pushes): what the REST tests run."""
    app = create_app(settings)
    app.cleanup_ctx.extend(
        [
            _context(settings, clock, context),
            _duties(settings, sockets=False),
            _followers(settings, sockets=False, grpc=False),
        ]
    )
    return app


def _runtime_ctx(app: web.Application, settings: Settings) -> AppContext:
    """The context with this app's settings (tests hand in a shared context and other settings,
    e.g. a Kafka broker)."""
    ctx = app[CONTEXT]
    return ctx if ctx.settings is settings else dataclasses.replace(ctx, settings=settings)


def _register_core_checks(checks: Health, ctx: AppContext) -> None:
    async def database() -> dict:
        async with ctx.db.connection() as conn:
            await conn.fetchval("SELECT 1")
        return {"pool_size": ctx.db.pool.get_size(), "in_use": ctx.db.in_use}

    async def redis() -> dict:
        await ctx.redis.ping()
        return {}

    checks.register("database", database)
    checks.register("redis", redis)


def _context(settings: Settings, clock: Clock | None, provided: AppContext | None) -> Lifetime:
    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            ctx = (
                provided
                if provided is not None
                else await stack.enter_async_context(open_context(settings, clock=clock))
            )
            app[CONTEXT] = ctx
            _register_core_checks(app[HEALTH], ctx)
            yield

    return lifetime


def _live_runtime(sio: socketio.AsyncServer) -> Lifetime:
    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        """Pushes to clients on any replica: the Redis manager, ``ctx.live``, queue pushes."""
        ctx = app[CONTEXT]
        start_pushing(sio)
        ctx.live.emitter = sio
        await ctx.queue_notifier.start(functools.partial(departments.availability, ctx))
        yield
        await ctx.queue_notifier.aclose()
        ctx.live.emitter = None
        await stop_pushing(sio)

    return lifetime


def _duties(settings: Settings, *, sockets: bool) -> Lifetime:
    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        """The replica's Leader connection, and the duty table run on it."""
        ctx = _runtime_ctx(app, settings)
        leader = Leader(settings.dsn)
        await leader.start()
        app[LEADER] = leader
        duties = Duties(ctx, leader, sockets=sockets)
        await duties.start()
        yield
        await duties.aclose()
        await leader.aclose()

    return lifetime


def _followers(settings: Settings, *, sockets: bool, grpc: bool) -> Lifetime:
    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        """The one follower of the event log, with the listeners this replica runs."""
        ctx = _runtime_ctx(app, settings)
        listeners: list[Listener] = []
        if sockets:
            listeners.append(TicketLiveFeed(ctx))
        if settings.kafka_bootstrap_servers:
            app[KAFKA] = kafka = KafkaWorkers(ctx)
            listeners.append(kafka.relay)
        if ctx.search.follows_events:
            app[HEALTH].register(ctx.search.name, ctx.search.health, required=False)
            listeners.append(SearchFollower(ctx))
        if grpc:
            app[HUB] = hub = EventHub(ctx)
            listeners.append(hub)
        follower = EventFollower(app[LEADER], listeners)
        if grpc:
            hub.follower = follower
        await follower.start()
        yield
        await follower.aclose()

    return lifetime


def _grpc(settings: Settings, host: str = SERVE_HOST) -> Lifetime:
    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        """gRPC on GRPC_SERVER_PORT (0: any free port, see ``app[GRPC].port``), drained on stop."""
        server = GrpcServer(app[CONTEXT], settings=settings, host=f"[{host}]" if ":" in host else host, hub=app[HUB])
        await server.start()
        app[GRPC] = server
        app[HEALTH].register("grpc", server.report)
        yield
        await server.stop(GRPC_GRACE_SECONDS)

    return lifetime


def _kafka(settings: Settings) -> Lifetime:
    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        """The Kafka consumer and the ``kafka`` readiness component, when Kafka is configured."""
        kafka = app.get(KAFKA)
        if kafka is None:
            yield
            return
        app[HEALTH].register("kafka", kafka.health, required=False)
        await kafka.start()
        yield
        await kafka.aclose()

    return lifetime


def run(
    settings: Settings, *, host: str = SERVE_HOST, on_started: Callable[[AppContext], Awaitable[str]] | None = None
) -> None:
    """Serve on ``host`` (HTTP and gRPC) until SIGINT/SIGTERM. ``on_started`` runs once the
    context is open; the text it returns is printed when the ports are listening (dev's banner)."""
    app = build(settings, grpc_host=host)
    banner: list[str] = []

    async def started(app: web.Application) -> None:
        if on_started is not None:
            banner.append(await on_started(app[CONTEXT]))
        # Objects alive after start-up live for the whole process: keep the collector off them.
        gc.freeze()

    def listening(_: str) -> None:
        if banner:
            print(banner[0], flush=True)

    app.on_startup.append(started)
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    web.run_app(
        app, host=host, port=settings.server_port, print=listening, access_log=None, shutdown_timeout=10, loop=loop
    )
