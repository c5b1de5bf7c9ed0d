"""Bookings beside the chat and the ticket: a customer's recent bookings from the Booking Service,
and a booking linked to a ticket (README "Bookings").

The Booking Service is another team's (``app.clients.booking_service``, on the context only when
``GRPC_BOOKING_SERVICE_URL`` is set). Reading never fails because of it: without an answer the
page is empty with ``available: false``. A link is checked with ``GetBooking`` when the service
answers (an unknown booking is a 404, another customer's a 422); when it does not answer (not
configured, down or slower than the deadline) the link is stored unverified
(``metadata.booking_verified: false``, no reference) rather than refused, so an outage of the
Booking Service never stops an agent from recording what the customer told them.

A link is a ticket change like any other: the ticket is locked, its ``metadata`` gains
``booking_id``, ``booking_reference`` and ``booking_verified``, and the change is audited
(``ticket.booking_link`` / ``ticket.booking_unlink``) with a ``ticket.updated`` event in the same
transaction. Linking re-runs the priority rules with the new metadata (their ``has_booking``
condition reads ``metadata.booking_id``) and raises the priority when they give a higher one; it
never lowers a priority that staff or rules set, and unlinking leaves the priority as it is.
"""

from __future__ import annotations

import uuid
from typing import Any

from app.auth import Principal, RequestMeta, is_party
from app.context import AppContext
from app.errors import Forbidden, NotFound, ValidationFailed
from app.schemas.tickets import PRIORITIES
from app.services import automation, escalation, tickets
from app.services.ticket_model import event_summary, present
from app.services.ticket_store import locked_for_write, save_change

BOOKING_KEYS = ("booking_id", "booking_reference", "booking_verified")


# ---------------------------------------------------------------- a customer's bookings


async def _may_see_customer(ctx: AppContext, principal: Principal, customer_id: uuid.UUID) -> bool:
    """API.md visibility: supervisors, admins and services see every customer, a customer
    themselves, an agent a customer whose ticket they hold or with whom they are chatting."""
    if principal.sees_all or principal.role == "service":
        return True
    if principal.role == "customer":
        return principal.user_id == customer_id
    if principal.role != "agent":
        return False
    async with ctx.db.connection() as conn:
        return await ctx.db.q.agent_may_see_customer(conn, agent_id=principal.user_id, customer_id=customer_id)


async def customer_bookings(
    ctx: AppContext, principal: Principal, customer_id: uuid.UUID, limit: int, offset: int
) -> dict:
    """A page of the customer's recent bookings (newest first), ``available: false`` and no items
    when the Booking Service is not configured or did not answer."""
    if not await _may_see_customer(ctx, principal, customer_id):
        raise NotFound("Customer not found")
    found: tuple[Any, ...]
    if ctx.bookings is None:
        found, available = (), False
    else:
        answer = await ctx.bookings.customer_bookings(customer_id)
        found, available = answer.bookings, answer.available
    return {
        "items": [dict(b) for b in found[offset : offset + limit]],
        "total": len(found),
        "limit": limit,
        "offset": offset,
        "available": available,
    }


# ---------------------------------------------------------------- a booking linked to a ticket


def check_may_link(principal: Principal) -> None:
    """Linking is for staff and services (the 403 comes before any validation of the body)."""
    if not (principal.is_staff or principal.role == "service"):
        raise Forbidden("Only agents, supervisors, admins and services link bookings to tickets")


async def _verified(ctx: AppContext, ticket: dict, booking_id: str) -> dict[str, Any]:
    """The metadata a link stores, after asking the Booking Service when it is there."""
    lookup = await ctx.bookings.booking(booking_id) if ctx.bookings is not None else None
    if lookup is None or not lookup.available:
        return {"booking_id": booking_id, "booking_reference": None, "booking_verified": False}
    booking = lookup.booking
    if booking is None:
        raise NotFound("Booking not found")
    if not _same_customer(booking["customer_id"], ticket["customer_id"]):
        raise ValidationFailed(
            "The booking belongs to another customer",
            details={"booking_id": ["The booking belongs to another customer."]},
        )
    return {
        "booking_id": booking["id"] or booking_id,
        "booking_reference": booking["reference"],
        "booking_verified": True,
    }


def _same_customer(owner: str | None, customer_id: uuid.UUID | None) -> bool:
    """Whether the booking is the ticket's customer's (a side the service leaves empty cannot say no)."""
    if not owner or customer_id is None:
        return True
    try:
        return uuid.UUID(owner) == customer_id
    except ValueError:
        return False


def _higher(a: str, b: str) -> str:
    return a if PRIORITIES.index(a) >= PRIORITIES.index(b) else b


async def _write(
    ctx: AppContext, principal: Principal, meta: RequestMeta, ticket_id: uuid.UUID, booking: dict | None, action: str
) -> dict:
    """Set (``booking``) or clear (None) the ticket's booking keys under the ticket's lock."""
    now = ctx.clock.now()
    async with ctx.db.transaction() as conn:
        before = await locked_for_write(ctx, conn, principal, ticket_id)
        metadata = {k: v for k, v in (before["metadata"] or {}).items() if k not in BOOKING_KEYS}
        if booking is not None:
            metadata.update(booking)
        after = {**before, "metadata": metadata}
        if booking is not None:
            description = ctx.cipher.decrypt(before["description"], "support_tickets.description")
            ruled = await automation.prioritize(conn, before["subject"], description, metadata)
            after["priority"] = _higher(ruled, before["priority"])
        changes = {
            field: {"from": before[field], "to": after[field]}
            for field in ("metadata", "priority")
            if before[field] != after[field]
        }
        if not changes:
            return present(ctx, before)
        summary = {
            "booking_id": metadata.get("booking_id"),
            "booking_reference": metadata.get("booking_reference"),
            "booking_verified": metadata.get("booking_verified"),
        }

        async def record(row: dict) -> tuple[dict, list[tuple[str, dict]]]:
            return {**changes, **summary}, [("ticket.updated", {**event_summary(row), "changes": changes, **summary})]

        row, _ = await save_change(ctx, conn, principal, meta, before, after, now=now, action=action, record=record)
    await ctx.ticket_cache.invalidate(ticket_id)
    await escalation.on_ticket_changed(ctx, ticket_id)  # the rules run on ticket changes (a priority may have risen)
    return present(ctx, row)


async def link_booking(
    ctx: AppContext, principal: Principal, meta: RequestMeta, ticket_id: uuid.UUID, booking_id: str
) -> dict:
    """Link a booking to the ticket (replacing any earlier one); returns the ticket."""
    check_may_link(principal)
    ticket = await tickets.get_ticket(ctx, principal, ticket_id)  # 404 before asking the Booking Service
    if not is_party(principal, ticket):  # 403 too (locked_for_write checks again)
        raise Forbidden("Only the assigned agent, a supervisor or an admin may change this ticket")
    booking = await _verified(ctx, ticket, booking_id)  # outside the ticket's lock: up to 2 s
    return await _write(ctx, principal, meta, ticket_id, booking, "ticket.booking_link")


async def unlink_booking(ctx: AppContext, principal: Principal, meta: RequestMeta, ticket_id: uuid.UUID) -> dict:
    """Remove the ticket's booking link (nothing to do when there is none); returns the ticket."""
    check_may_link(principal)
    return await _write(ctx, principal, meta, ticket_id, None, "ticket.booking_unlink")
