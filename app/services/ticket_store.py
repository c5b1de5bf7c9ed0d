"""Tickets in PostgreSQL: reading them (through the cache), locking one for a change, and
:func:`save_change`, the one way a changed ticket is written: the row, the agents' load, the
audit row and the events, in the caller's transaction.

Built on the model (app.services.ticket_model) only; the commands (app.services.tickets),
automation and escalation build on this module.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from app.auth import Principal, RequestMeta, is_party
from app.context import AppContext
from app.db import queries
from app.errors import Forbidden, NotFound
from app.security import audit
from app.services.ticket_model import event_summary, holds, mutable_fields

Emitted = Sequence[tuple[str, dict[str, Any]]]  # (event type, payload) about the ticket


async def load_row(ctx: AppContext, ticket_id: uuid.UUID) -> dict | None:
    async def load() -> dict | None:
        async with ctx.db.connection() as conn:
            row = await ctx.db.q.get_ticket(conn, id=ticket_id)
        return dict(row) if row else None

    return await ctx.ticket_cache.get_or_load(ticket_id, load)


async def can_read(ctx: AppContext, conn: asyncpg.Connection | None, principal: Principal, row: dict) -> bool:
    if is_party(principal, row):
        return True
    if principal.role == "customer" or row["customer_id"] is None:
        return False
    # API.md: an agent may read the tickets of a customer they are chatting with.
    if conn is None:
        async with ctx.db.connection() as own:
            return await ctx.db.q.agent_chats_with_customer(
                own, agent_id=principal.user_id, customer_id=row["customer_id"]
            )
    return await ctx.db.q.agent_chats_with_customer(conn, agent_id=principal.user_id, customer_id=row["customer_id"])


async def locked_for_write(
    ctx: AppContext, conn: asyncpg.Connection, principal: Principal, ticket_id: uuid.UUID
) -> dict:
    """Lock the ticket; 404 if the caller may not see it, 403 if they may see but not change it."""
    row = await ctx.db.q.lock_ticket(conn, id=ticket_id)
    if row is None or not await can_read(ctx, conn, principal, dict(row)):
        raise NotFound("Ticket not found")
    row = dict(row)
    if not is_party(principal, row):
        raise Forbidden("Only the assigned agent, a supervisor or an admin may change this ticket")
    return row


async def adjust_load(conn: asyncpg.Connection, before: dict | None, after: dict | None) -> uuid.UUID | None:
    """Move ``current_tickets`` for a ticket going from ``before`` to ``after`` (None: absent).

    Returns the agent whose load went down (capacity freed), if any."""
    was_held = before["agent_id"] if before is not None and holds(before) else None
    now_held = after["agent_id"] if after is not None and holds(after) else None
    if was_held is not None and was_held == now_held:
        return None
    if was_held is not None:
        await queries.release_agent_load(conn, user_id=was_held)
    if now_held is not None:
        await queries.charge_agent_load(conn, user_id=now_held)
    return was_held


def update_events(before: dict, row: dict, changes: dict[str, Any], reason: str | None) -> list[tuple[str, dict]]:
    """The events of an edit: ``ticket.updated``, and ``ticket.status_changed`` and
    ``ticket.assigned`` when those moved."""
    summary = event_summary(row)
    emitted: list[tuple[str, dict]] = [("ticket.updated", {**summary, "changes": changes})]
    if "status" in changes:
        emitted.append(
            ("ticket.status_changed", {**summary, "from": before["status"], "to": row["status"], "reason": reason})
        )
    if "agent_id" in changes:
        emitted.append(("ticket.assigned", {**summary, "from_agent_id": before["agent_id"]}))
    return emitted


async def save_change(
    ctx: AppContext,
    conn: asyncpg.Connection,
    principal: Principal | None,
    meta: RequestMeta,
    before: dict,
    after: dict,
    *,
    now: Any,
    action: str | None,
    record: Callable[[dict], Awaitable[tuple[dict[str, Any], Emitted]]] | None = None,
) -> tuple[dict, uuid.UUID | None]:
    """Write ``after`` over ``before`` (locked in this transaction), move the agents' load, and
    record the change: the audit row ``action`` and the events that ``record(row)`` returns as
    ``(audit changes, events)`` (it may write rows of its own first, e.g. an escalation). Without
    ``action`` nothing is recorded (a field the change of another entity implies, such as a first
    response, which that entity's own audit row and event cover). Returns the written row and the
    agent whose capacity was freed."""
    row = dict(await ctx.db.q.update_ticket(conn, **mutable_fields(after), now=now))
    freed = await adjust_load(conn, before, row)
    if action is not None and record is not None:
        details, emitted = await record(row)
        await audit.record_change(conn, ctx.events, principal, meta, action, "ticket", row["id"], details, emitted)
    return row, freed
