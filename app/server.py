"""The composition root: one replica's aiohttp app with REST and Socket.IO (gRPC joins it),
run on uvloop. The only module of ``app`` that imports transports: it puts them together."""
from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable

import uvloop
from aiohttp import web

from app.config import Settings
from app.context import AppContext
from app.clock import Clock
from rest.app import create_app
from rest.common import CONTEXT
from sockets.server import attach_sockets


def build(settings: Settings, *, clock: Clock | None = None, context: AppContext | None = None) -> web.Application:
    app = create_app(settings, clock=clock, context=context)
    attach_sockets(app, settings)
    return app


def run(settings: Settings, *, on_started: Callable[[AppContext], Awaitable[str]] | None = None) -> None:
    """Serve until SIGINT/SIGTERM. ``on_started`` runs once the context is open; the text it
    returns is printed when the ports are listening (dev mode's banner)."""
    app = build(settings)
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
    web.run_app(app, host="0.0.0.0", port=settings.server_port, print=listening, access_log=None,
                shutdown_timeout=10, loop=loop)
