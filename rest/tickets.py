"""/api/v1/tickets: thin handlers over app.services.tickets."""

from __future__ import annotations

from aiohttp import web

from app.schemas import tickets as s
from app.schemas.common import PageQuery
from app.services import tickets
from rest.common import authenticate, body, context, created, json_response, meta, no_content, path_uuid, query
from rest.openapi import api_doc

routes = web.RouteTableDef()
TAGS = ["Tickets"]


@routes.get("/api/v1/tickets")
@api_doc(summary="List tickets the caller may see", tags=TAGS, query=s.TicketListQuery, response=s.TicketPageSchema)
async def list_tickets(request: web.Request) -> web.Response:
    principal = authenticate(request)
    params = await query(request, s.TicketListQuery())
    return json_response(await tickets.list_tickets(context(request), principal, params))


@routes.post("/api/v1/tickets")
@api_doc(
    summary="Create a ticket",
    tags=TAGS,
    body=s.TicketCreateSchema,
    response=s.TicketSchema,
    status=201,
    description=s.CUSTOMER_CREATE_RULES,
)
async def create_ticket(request: web.Request) -> web.Response:
    principal = authenticate(request)
    data = await body(request, s.TicketCreateSchema())
    ticket = await tickets.create_ticket(context(request), principal, meta(request), data)
    return created(ticket, f"/api/v1/tickets/{ticket['id']}")


@routes.get("/api/v1/tickets/{id}")
@api_doc(summary="Get a ticket", tags=TAGS, response=s.TicketSchema, errors=(404,))
async def get_ticket(request: web.Request) -> web.Response:
    principal = authenticate(request)
    ticket_id = path_uuid(request, what="Ticket")
    return json_response(await tickets.get_ticket(context(request), principal, ticket_id))


@routes.put("/api/v1/tickets/{id}")
@api_doc(
    summary="Update a ticket (partial)",
    tags=TAGS,
    body=s.TicketUpdateSchema,
    response=s.TicketSchema,
    errors=(404, 409),
    description=s.CUSTOMER_UPDATE_RULES,
)
async def update_ticket(request: web.Request) -> web.Response:
    principal = authenticate(request)
    ticket_id = path_uuid(request, what="Ticket")
    data = await body(request, s.TicketUpdateSchema())
    return json_response(await tickets.update_ticket(context(request), principal, meta(request), ticket_id, data))


@routes.delete("/api/v1/tickets/{id}")
@api_doc(summary="Delete a ticket and its messages (supervisors, admins)", tags=TAGS, status=204, errors=(404,))
async def delete_ticket(request: web.Request) -> web.Response:
    principal = authenticate(request)
    ticket_id = path_uuid(request, what="Ticket")
    await tickets.delete_ticket(context(request), principal, meta(request), ticket_id)
    return no_content()


@routes.patch("/api/v1/tickets/{id}/status")
@api_doc(
    summary="Change a ticket's status", tags=TAGS, body=s.TicketStatusSchema, response=s.TicketSchema, errors=(404, 409)
)
async def change_status(request: web.Request) -> web.Response:
    principal = authenticate(request)
    ticket_id = path_uuid(request, what="Ticket")
    data = await body(request, s.TicketStatusSchema())
    ticket = await tickets.change_status(
        context(request), principal, meta(request), ticket_id, data["status"], data.get("reason")
    )
    return json_response(ticket)


@routes.post("/api/v1/tickets/{id}/escalate")
@api_doc(
    summary="Escalate a ticket",
    tags=TAGS,
    body=s.TicketEscalateSchema,
    response=s.EscalateResponseSchema,
    errors=(404, 409),
)
async def escalate_ticket(request: web.Request) -> web.Response:
    principal = authenticate(request)
    ticket_id = path_uuid(request, what="Ticket")
    data = await body(request, s.TicketEscalateSchema())
    result = await tickets.escalate_ticket(context(request), principal, meta(request), ticket_id, data.get("reason"))
    return json_response(result)


@routes.get("/api/v1/tickets/{id}/messages")
@api_doc(
    summary="List a ticket's messages (internal notes for agents only)",
    tags=TAGS,
    query=PageQuery,
    response=s.TicketMessagePageSchema,
    errors=(404,),
)
async def list_messages(request: web.Request) -> web.Response:
    principal = authenticate(request)
    ticket_id = path_uuid(request, what="Ticket")
    params = await query(request, PageQuery())
    page = await tickets.list_messages(context(request), principal, ticket_id, params["limit"], params["offset"])
    return json_response(page)


@routes.post("/api/v1/tickets/{id}/messages")
@api_doc(
    summary="Add a message or an internal note to a ticket",
    tags=TAGS,
    body=s.TicketMessageCreateSchema,
    response=s.TicketMessageSchema,
    status=201,
    errors=(404, 409),
    also={200: "A resend of an earlier client_msg_id: the message stored the first time"},
)
async def add_message(request: web.Request) -> web.Response:
    principal = authenticate(request)
    ticket_id = path_uuid(request, what="Ticket")
    data = await body(request, s.TicketMessageCreateSchema())
    sent = await tickets.add_reply(context(request), principal, meta(request), ticket_id, data)
    message, location = sent["message"], f"/api/v1/tickets/{ticket_id}/messages/{sent['message']['id']}"
    if sent["duplicate"]:
        return json_response(message, headers={"Location": location})
    return created(message, location)


@routes.get("/api/v1/tickets/{id}/messages/{message_id}")
@api_doc(summary="Get one message of a ticket", tags=TAGS, response=s.TicketMessageSchema, errors=(404,))
async def get_message(request: web.Request) -> web.Response:
    principal = authenticate(request)
    ticket_id = path_uuid(request, what="Ticket")
    message_id = path_uuid(request, "message_id", what="Message")
    return json_response(await tickets.get_message(context(request), principal, ticket_id, message_id))


@routes.get("/api/v1/tickets/{id}/history")
@api_doc(summary="A ticket's timeline from the event log", tags=TAGS, response=s.TicketHistorySchema, errors=(404,))
async def ticket_history(request: web.Request) -> web.Response:
    principal = authenticate(request)
    ticket_id = path_uuid(request, what="Ticket")
    return json_response({"items": await tickets.history(context(request), principal, ticket_id)})
