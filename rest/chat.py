"""/api/v1/chat/sessions: the chat over REST, on the same services as the sockets.

Paths accept a session's ``id`` or its ``session_key``; a message sent here reaches the sockets
in the session like any other.
"""

from __future__ import annotations

from aiohttp import web

from app.schemas import chat as s
from app.services import chat, departments
from rest.common import authenticate, body, context, created, json_response, meta, query
from rest.openapi import api_doc

routes = web.RouteTableDef()
TAGS = ["Chat"]


def _ref(request: web.Request) -> str:
    return request.match_info["id"]


@routes.get("/api/v1/chat/sessions")
@api_doc(
    summary="List chat sessions the caller may see", tags=TAGS, query=s.SessionListQuery, response=s.SessionPageSchema
)
async def list_sessions(request: web.Request) -> web.Response:
    principal = authenticate(request)
    params = await query(request, s.SessionListQuery())
    return json_response(await chat.list_sessions(context(request), principal, params))


@routes.get("/api/v1/chat/availability")
@api_doc(
    summary="Departments with agents online, free places and queue length (the widget's pre-chat form)",
    tags=TAGS,
    query=s.AvailabilityQuery,
    response=s.AvailabilitySchema,
)
async def availability(request: web.Request) -> web.Response:
    authenticate(request)
    params = await query(request, s.AvailabilityQuery())
    return json_response(await departments.availability(context(request), params.get("department")))


@routes.post("/api/v1/chat/sessions")
@api_doc(
    summary="Start a chat (or get the customer's open one)",
    tags=TAGS,
    body=s.ChatStartSchema,
    response=s.SessionSchema,
    status=201,
    errors=(409,),
    also={200: "The customer's open session, returned instead of a new one"},
)
async def create_session(request: web.Request) -> web.Response:
    principal = authenticate(request)
    data = await body(request, s.ChatStartSchema())
    result = await chat.start_chat(context(request), principal, meta(request), data)
    session = result["session"]
    location = f"/api/v1/chat/sessions/{session['id']}"
    if not result["created"]:  # the customer's open session, not a new one
        return json_response(session, headers={"Location": location})
    return created(session, location)


@routes.get("/api/v1/chat/sessions/{id}")
@api_doc(summary="Get a chat session", tags=TAGS, response=s.SessionSchema, errors=(404,))
async def get_session(request: web.Request) -> web.Response:
    principal = authenticate(request)
    return json_response(await chat.get_session(context(request), principal, _ref(request)))


@routes.put("/api/v1/chat/sessions/{id}")
@api_doc(
    summary="Update a chat: subject/metadata, transfer (agent_id or department), end (status: ended)",
    tags=TAGS,
    body=s.SessionUpdateSchema,
    response=s.SessionSchema,
    errors=(404, 409, 503),
)
async def update_session(request: web.Request) -> web.Response:
    principal = authenticate(request)
    data = await body(request, s.SessionUpdateSchema())
    return json_response(await chat.update_session(context(request), principal, meta(request), _ref(request), data))


@routes.post("/api/v1/chat/sessions/{id}/messages")
@api_doc(
    summary="Send a chat message",
    tags=TAGS,
    body=s.MessageCreateSchema,
    response=s.MessageSchema,
    status=201,
    errors=(404, 409),
    also={200: "A resend of an earlier client_msg_id: the message stored the first time"},
)
async def send_message(request: web.Request) -> web.Response:
    principal = authenticate(request)
    data = await body(request, s.MessageCreateSchema())
    sent = await chat.send_message(
        context(request),
        principal,
        meta(request),
        _ref(request),
        data.get("client_msg_id"),
        data["message"],
        data["message_type"],
        attachment_ids=data.get("attachments"),
    )
    message = sent["message"]
    location = f"/api/v1/chat/sessions/{message['session_id']}/messages?after_seq={message['seq'] - 1}&limit=1"
    if sent["duplicate"]:
        return json_response(message, headers={"Location": location})
    return created(message, location)


@routes.get("/api/v1/chat/sessions/{id}/messages")
@api_doc(
    summary="Messages of a chat after a seq",
    tags=TAGS,
    query=s.MessageListQuery,
    response=s.MessageListSchema,
    errors=(404,),
)
async def list_messages(request: web.Request) -> web.Response:
    principal = authenticate(request)
    params = await query(request, s.MessageListQuery())
    return json_response(
        await chat.list_messages(context(request), principal, _ref(request), params["after_seq"], params["limit"])
    )
