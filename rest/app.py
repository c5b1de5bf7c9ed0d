"""The aiohttp application: middlewares, routes and docs, with its resources in ``cleanup_ctx``.

The AppContext is opened when the app starts and closed when it stops (or handed in by tests,
who share one across many apps and close it themselves).
"""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from app.clock import Clock
from app.config import Settings
from app.context import AppContext, open_context
from app.health import Health
from app.services import automation as automation_service
from rest import (
    agents,
    analytics,
    attachments,
    audit,
    automation,
    bookings,
    canned,
    chat,
    departments,
    escalation,
    feedback,
    health,
    kb,
    middleware,
    tickets,
)
from rest.common import CONTEXT
from rest.docs import setup_docs
from rest.static import setup_static


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


def _context_lifetime(settings: Settings, clock: Clock | None,
                      provided: AppContext | None) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            ctx = provided or await stack.enter_async_context(open_context(settings, clock=clock))
            app[CONTEXT] = ctx
            _register_core_checks(app[health.HEALTH], ctx)
            yield
    return lifetime


def create_app(settings: Settings, *, clock: Clock | None = None,
               context: AppContext | None = None) -> web.Application:
    app = web.Application(
        middlewares=[middleware.request_context, middleware.cors(settings.cors_allowed_origins or ()),
                     middleware.problems, middleware.rate_limit],
        client_max_size=2 * 1024 * 1024)
    app.on_response_prepare.append(middleware.security_headers)
    app[health.HEALTH] = Health()
    app.cleanup_ctx.append(_context_lifetime(settings, clock, context))
    app.cleanup_ctx.append(kb.background)
    app.cleanup_ctx.append(escalation.background)
    app.cleanup_ctx.append(automation_service.background)
    app.cleanup_ctx.append(attachments.background)
    for module in (tickets, chat, departments, agents, audit, health, kb, feedback, analytics, canned, automation, escalation,
                   attachments):
        app.router.add_routes(module.routes)
    app.router.add_routes(bookings.routes)   # beside the chat and ticket (README "Bookings")
    setup_docs(app)
    setup_static(app, settings)
    return app
