"""Running one replica: the aiohttp app (REST now; Socket.IO and gRPC join it) on uvloop."""
from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable

import uvloop
from aiohttp import web

from app.config import Settings
from app.context import AppContext
from rest.app import create_app
from rest.common import CONTEXT


def run(settings: Settings, *, on_started: Callable[[AppContext], Awaitable[None]] | None = None) -> None:
    app = create_app(settings)

    async def started(app: web.Application) -> None:
        # Objects alive after start-up live for the whole process: keep the collector off them.
        gc.freeze()
        if on_started is not None:
            await on_started(app[CONTEXT])

    app.on_startup.append(started)
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    web.run_app(app, host="0.0.0.0", port=settings.server_port, print=None, access_log=None,
                shutdown_timeout=10, loop=loop)
