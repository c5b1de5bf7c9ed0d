"""``ticket:*`` socket events fed from the event log, so a change made over REST or gRPC (on any
replica) reaches the customer, the agent and supervisors live.

One replica at a time follows the log (:class:`TicketLiveFeed`, a leader listener of the
replica's event follower, app/follower.py); it is woken by NOTIFY on ``support_events`` and reads
in commit-safe order, remembering its cursor in Redis so a new leader carries on where the old
one stopped.
"""

from __future__ import annotations

import logging
import uuid

import asyncpg

from app.context import AppContext
from app.follower import Cursor, StoredCursor, Wake, cursor_of, events_after, log_head
from app.live import AGENT_NS, CUSTOMER_NS, SUPERVISORS, agent_room, customer_room
from app.services.ticket_model import present
from app.services.tickets import present_message

log = logging.getLogger(__name__)

SOCKET_EVENTS = {
    "ticket.created": "ticket:created",
    "ticket.updated": "ticket:updated",
    "ticket.escalated": "ticket:escalated",
    "ticket.assigned": "ticket:assigned",
    # An addition to PROTOCOL.md: {ticket, message}; internal notes reach staff only.
    "ticket.message_added": "ticket:message",
}
_CURSOR_KEY = "live:ticket-feed:cursor"
_TYPE_PATTERNS = list(SOCKET_EVENTS)  # as LIKE patterns they match exactly (no % or _ in them)
_IDLE_POLL_SECONDS = 5.0  # a safety net; NOTIFY wakes the feed at once


async def push_pending(ctx: AppContext, cursor: Cursor | None = None) -> tuple[Cursor, int]:
    """Push every ticket event committed after ``cursor`` (default: the one stored in Redis, else
    the log's head); returns the new cursor and how many events were pushed.

    The cursor is (txid, position), read in that order below the snapshot's xmin (see
    app/follower.py), so an event that commits late is never left behind it.
    """
    stored = StoredCursor(ctx.redis, _CURSOR_KEY)
    if cursor is None:
        cursor = await stored.get()
    if cursor is None:
        async with ctx.db.connection() as conn:
            cursor = await log_head(ctx.db, conn)
    start, pushed = cursor, 0
    async for rows in events_after(ctx.db, cursor, entity_type="ticket", type_patterns=_TYPE_PATTERNS):
        async with ctx.db.connection() as conn:
            for row in rows:
                try:
                    await _push(ctx, conn, row)
                    pushed += 1
                except Exception:
                    # One event that cannot be pushed (e.g. unreadable) must not stall the feed.
                    log.exception("ticket event not pushed", extra={"position": row["position"]})
        cursor = cursor_of(rows[-1])
    if cursor != start:
        await stored.set(cursor)
    return cursor, pushed


async def _push(ctx: AppContext, conn: asyncpg.Connection, event: asyncpg.Record) -> None:
    ticket_row = await ctx.db.q.get_ticket(conn, id=event["entity_id"])
    if ticket_row is None:  # deleted since
        return
    data = {"ticket": present(ctx, dict(ticket_row))}
    name = SOCKET_EVENTS[event["type"]]
    internal = False
    if event["type"] == "ticket.message_added":
        message = await ctx.db.q.get_ticket_message(
            conn, ticket_id=ticket_row["id"], id=uuid.UUID(event["payload"]["message_id"])
        )
        if message is None:
            return
        data["message"] = present_message(ctx, dict(message))
        internal = message["is_internal"]
    if ticket_row["customer_id"] and not internal:
        await ctx.live.emit(name, data, to=customer_room(ticket_row["customer_id"]), namespace=CUSTOMER_NS)
    rooms = [SUPERVISORS] + ([agent_room(ticket_row["agent_id"])] if ticket_row["agent_id"] else [])
    previous = event["payload"].get("from_agent_id")
    if event["type"] == "ticket.assigned" and previous:
        rooms.append(agent_room(previous))
    await ctx.live.emit(name, data, to=rooms, namespace=AGENT_NS)


class TicketLiveFeed:
    """A listener of the replica's event follower (app/follower.py): one replica at a time
    pushes ticket events to sockets, woken by NOTIFY, reading through pool connections only
    while it reads."""

    name = "ticket-live-feed"
    leader = True

    def __init__(self, ctx: AppContext, *, idle_seconds: float = _IDLE_POLL_SECONDS):
        self.ctx = ctx
        self.idle_seconds = idle_seconds
        self.retry_seconds = idle_seconds
        self.wake = Wake()

    async def follow(self) -> None:
        cursor = None  # the stored one: where the previous leader stopped
        while True:
            cursor, _ = await push_pending(self.ctx, cursor)
            await self.wake.wait(self.idle_seconds)
