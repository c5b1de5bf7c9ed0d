"""/api/v1/agents: the roster (supervisors, admins) and each agent's own profile."""

from __future__ import annotations

from aiohttp import web

from app.auth import STAFF
from app.schemas import agents as s
from app.services import agents
from rest.common import (
    MANAGERS,
    authenticate,
    body,
    context,
    created,
    json_response,
    meta,
    no_content,
    path_uuid,
    query,
)
from rest.openapi import api_doc

routes = web.RouteTableDef()
TAGS = ["Agents"]


@routes.get("/api/v1/agents")
@api_doc(summary="List agents (supervisors, admins)", tags=TAGS, query=s.AgentListQuery, response=s.AgentPageSchema)
async def list_agents(request: web.Request) -> web.Response:
    principal = authenticate(request, *MANAGERS)
    params = await query(request, s.AgentListQuery())
    return json_response(await agents.list_agents(context(request), principal, params))


@routes.post("/api/v1/agents")
@api_doc(
    summary="Create an agent (supervisors, admins)",
    tags=TAGS,
    body=s.AgentCreateSchema,
    response=s.AgentSchema,
    status=201,
    errors=(409,),
)
async def create_agent(request: web.Request) -> web.Response:
    principal = authenticate(request, *MANAGERS)
    data = await body(request, s.AgentCreateSchema())
    agent = await agents.create_agent(context(request), principal, meta(request), data)
    return created(agent, f"/api/v1/agents/{agent['id']}")


@routes.get("/api/v1/agents/me")
@api_doc(summary="The calling agent's own profile", tags=TAGS, response=s.AgentSchema, errors=(404,))
async def get_me(request: web.Request) -> web.Response:
    principal = authenticate(request)
    return json_response(await agents.get_me(context(request), principal))


@routes.patch("/api/v1/agents/me/status")
@api_doc(
    summary="Set the calling agent's status", tags=TAGS, body=s.AgentStatusSchema, response=s.AgentSchema, errors=(404,)
)
async def set_my_status(request: web.Request) -> web.Response:
    principal = authenticate(request, *STAFF)
    data = await body(request, s.AgentStatusSchema())
    return json_response(await agents.set_my_status(context(request), principal, meta(request), data["status"]))


@routes.get("/api/v1/agents/stats")
@api_doc(
    summary="Each agent's status, load and today's figures (supervisors, admins)",
    tags=TAGS,
    query=s.AgentStatsQuery,
    response=s.AgentStatsPageSchema,
    description="Today starts at midnight in `tz`; `from`/`to` choose another window. First response "
    "is assigned -> first agent message (chats assigned in the window); handle time is "
    "assigned -> ended (chats that ended in it); ratings are those received in it.",
)
async def agent_stats(request: web.Request) -> web.Response:
    principal = authenticate(request)
    params = await query(request, s.AgentStatsQuery())
    return json_response(await agents.stats(context(request), principal, params))


@routes.get("/api/v1/agents/{id}")
@api_doc(summary="Get an agent (supervisors, admins)", tags=TAGS, response=s.AgentSchema, errors=(404,))
async def get_agent(request: web.Request) -> web.Response:
    principal = authenticate(request, *MANAGERS)
    agent_id = path_uuid(request, what="Agent")
    return json_response(await agents.get_agent(context(request), principal, agent_id))


def _only_get_on_me(request: web.Request) -> None:
    """``/agents/me`` exists and is read-only (its status has its own route): 405, not 404."""
    if request.match_info["id"] == "me":
        raise web.HTTPMethodNotAllowed(request.method, ["GET"])


@routes.put("/api/v1/agents/{id}")
@api_doc(
    summary="Update an agent (partial; supervisors, admins)",
    tags=TAGS,
    body=s.AgentUpdateSchema,
    response=s.AgentSchema,
    errors=(404,),
)
async def update_agent(request: web.Request) -> web.Response:
    _only_get_on_me(request)
    principal = authenticate(request, *MANAGERS)
    agent_id = path_uuid(request, what="Agent")
    data = await body(request, s.AgentUpdateSchema())
    return json_response(await agents.update_agent(context(request), principal, meta(request), agent_id, data))


@routes.delete("/api/v1/agents/{id}")
@api_doc(summary="Delete an agent (supervisors, admins)", tags=TAGS, status=204, errors=(404,))
async def delete_agent(request: web.Request) -> web.Response:
    _only_get_on_me(request)
    principal = authenticate(request, *MANAGERS)
    agent_id = path_uuid(request, what="Agent")
    await agents.delete_agent(context(request), principal, meta(request), agent_id)
    return no_content()
