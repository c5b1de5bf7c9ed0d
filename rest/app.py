"""The REST application: middlewares, routes and docs. Its resources and lifetimes (the
AppContext, the duties) belong to the composition root, app/server.py."""

from __future__ import annotations

from aiohttp import web

from app.config import Settings
from app.health import HEALTH, Health
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
from rest.docs import setup_docs
from rest.static import setup_static


def create_app(settings: Settings) -> web.Application:
    """The REST routes and middlewares; the resources the handlers use (app[CONTEXT], app[HEALTH])
    are put in place by the composition root, app/server.py."""
    app = web.Application(
        middlewares=[
            middleware.request_context,
            middleware.cors(settings.cors_allowed_origins or ()),
            middleware.request_limits,
            middleware.problems,
            middleware.rate_limit,
        ],
        client_max_size=2 * 1024 * 1024,
        handler_args=middleware.PARSER_LIMITS,
    )
    app.on_response_prepare.append(middleware.security_headers)
    app[HEALTH] = Health()
    for module in (
        tickets,
        chat,
        departments,
        agents,
        audit,
        health,
        kb,
        feedback,
        analytics,
        canned,
        automation,
        escalation,
        attachments,
    ):
        app.router.add_routes(module.routes)
    app.router.add_routes(bookings.routes)  # beside the chat and ticket (README "Bookings")
    setup_docs(app)
    setup_static(app, settings)
    return app
