"""The composition root: one replica's aiohttp app with REST, Socket.IO and gRPC on one event
loop (uvloop), plus the event workers (Kafka relay and consumer, retention). The only module of
``app`` that imports transports: it puts them together."""
from __future__ import annotations

import asyncio
import dataclasses
import gc
from collections.abc import AsyncIterator, Awaitable, Callable

import uvloop
from aiohttp import web

from app.config import Settings
from app.context import AppContext
from app.clock import Clock
from app.kafka.workers import event_workers
from grpc_server.server import GrpcServer
from rest.app import create_app
from rest.common import CONTEXT
from rest.health import HEALTH
from sockets.server import attach_sockets

GRPC = web.AppKey("grpc", GrpcServer)
GRPC_GRACE_SECONDS = 5.0


# `serve` listens on every interface (a container's port is published); `dev` on 127.0.0.1 by default.
SERVE_HOST = "0.0.0.0"


def build(settings: Settings, *, clock: Clock | None = None, context: AppContext | None = None,
          grpc_host: str = SERVE_HOST) -> web.Application:
    app = create_app(settings, clock=clock, context=context)
    attach_sockets(app, settings)
    app.cleanup_ctx.append(_grpc_lifetime(settings, grpc_host))
    app.cleanup_ctx.append(_event_workers_lifetime(settings))
    return app


def _grpc_lifetime(settings: Settings, host: str = SERVE_HOST) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        """gRPC on GRPC_SERVER_PORT (0: any free port, see ``app[GRPC].port``), drained on stop."""
        server = GrpcServer(app[CONTEXT], settings=settings, host=f"[{host}]" if ":" in host else host)
        await server.start()
        app[GRPC] = server
        app[HEALTH].register("grpc", server.report)
        yield
        await server.stop(GRPC_GRACE_SECONDS)
    return lifetime


def _event_workers_lifetime(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        """Kafka relay and consumer (when KAFKA_BOOTSTRAP_SERVERS is set) and event retention."""
        ctx = app[CONTEXT]
        if ctx.settings is not settings:   # tests hand in a shared context with other settings
            ctx = dataclasses.replace(ctx, settings=settings)
        async with event_workers(ctx, app[HEALTH].register):
            yield
    return lifetime


def run(settings: Settings, *, host: str = SERVE_HOST,
        on_started: Callable[[AppContext], Awaitable[str]] | None = None) -> None:
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
    web.run_app(app, host=host, port=settings.server_port, print=listening, access_log=None,
                shutdown_timeout=10, loop=loop)
