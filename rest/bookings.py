"""Bookings beside the chat and the ticket: thin handlers over app.services.bookings."""

from __future__ import annotations

from aiohttp import web

from app.schemas import bookings as s
from app.schemas.common import PageQuery
from app.schemas.tickets import TicketSchema
from app.services import bookings
from rest.common import authenticate, body, context, json_response, meta, no_content, path_uuid, query
from rest.openapi import api_doc

routes = web.RouteTableDef()
TAGS = ["Bookings"]


@routes.get("/api/v1/customers/{customer_id}/bookings")
@api_doc(
    summary="A customer's recent bookings (from the Booking Service)",
    tags=TAGS,
    query=PageQuery,
    response=s.BookingPageSchema,
    errors=(404,),
    description=s.BOOKINGS_RULES,
)
async def customer_bookings(request: web.Request) -> web.Response:
    principal = authenticate(request)
    customer_id = path_uuid(request, "customer_id", what="Customer")
    params = await query(request, PageQuery())
    page = await bookings.customer_bookings(context(request), principal, customer_id, params["limit"], params["offset"])
    return json_response(page)


@routes.put("/api/v1/tickets/{id}/booking")
@api_doc(
    summary="Link a booking to a ticket",
    tags=TAGS,
    body=s.BookingLinkSchema,
    response=TicketSchema,
    errors=(404,),
    description=s.LINK_RULES,
)
async def link_booking(request: web.Request) -> web.Response:
    principal = authenticate(request)
    bookings.check_may_link(principal)
    ticket_id = path_uuid(request, what="Ticket")
    data = await body(request, s.BookingLinkSchema())
    ticket = await bookings.link_booking(context(request), principal, meta(request), ticket_id, data["booking_id"])
    return json_response(ticket)


@routes.delete("/api/v1/tickets/{id}/booking")
@api_doc(summary="Remove a ticket's booking link", tags=TAGS, status=204, errors=(404,))
async def unlink_booking(request: web.Request) -> web.Response:
    principal = authenticate(request)
    bookings.check_may_link(principal)
    ticket_id = path_uuid(request, what="Ticket")
    await bookings.unlink_booking(context(request), principal, meta(request), ticket_id)
    return no_content()
