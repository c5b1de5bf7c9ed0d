"""/api/v1/analytics: thin handlers over app.services.analytics."""

from __future__ import annotations

from aiohttp import web

from app.schemas import analytics as s
from app.services import analytics
from rest.common import authenticate, context, json_response, query
from rest.openapi import api_doc

routes = web.RouteTableDef()
TAGS = ["Analytics"]
DESCRIPTION = (
    "Window: `from` (inclusive) to `to` (exclusive), default the last 30 days; series buckets of "
    "`granularity` starting in time zone `tz`. Supervisors and admins see everything and may narrow "
    "to a `department` or an `agent_id`; an agent always gets their own figures."
)


async def _report(request: web.Request, name: str) -> web.Response:
    principal = authenticate(request)
    params = await query(request, s.WindowQuery())
    return json_response(await analytics.report(context(request), principal, name, params))


@routes.get("/api/v1/analytics/tickets")
@api_doc(
    summary="Tickets created, resolved, reopened, escalated, backlog; by status, priority, category",
    tags=TAGS,
    query=s.WindowQuery,
    response=s.TicketReportSchema,
    description=DESCRIPTION,
)
async def tickets(request: web.Request) -> web.Response:
    return await _report(request, "tickets")


@routes.get("/api/v1/analytics/chat")
@api_doc(
    summary="Chat sessions, answered, timed out, abandoned; waits, durations, peak concurrency",
    tags=TAGS,
    query=s.WindowQuery,
    response=s.ChatReportSchema,
    description=DESCRIPTION,
)
async def chat(request: web.Request) -> web.Response:
    return await _report(request, "chat")


@routes.get("/api/v1/analytics/response-time")
@api_doc(
    summary="First response and resolution times of tickets and chats (avg, p50, p90)",
    tags=TAGS,
    query=s.WindowQuery,
    response=s.ResponseTimeReportSchema,
    description=DESCRIPTION,
)
async def response_time(request: web.Request) -> web.Response:
    return await _report(request, "response_time")


@routes.get("/api/v1/analytics/satisfaction")
@api_doc(
    summary="CSAT, average rating, distribution and sentiment, by agent and category",
    tags=TAGS,
    query=s.WindowQuery,
    response=s.SatisfactionReportSchema,
    description=DESCRIPTION,
)
async def satisfaction(request: web.Request) -> web.Response:
    return await _report(request, "satisfaction")
