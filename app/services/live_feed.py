"""``ticket:*`` socket events fed from the event log, so a change made over REST or gRPC (on any
replica) reaches the customer, the agent and supervisors live.

One replica at a time follows the log (a session advisory lock held for as long as it leads);
it is woken by LISTEN/NOTIFY on ``support_events`` and reads in commit order, remembering its
position in Redis so a new leader carries on where the old one stopped.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib

import asyncpg

from app.context import AppContext
from app.live import AGENT_NS, CUSTOMER_NS, SUPERVISORS, agent_room, customer_room
from app.services.tickets import present

log = logging.getLogger(__name__)

SOCKET_EVENTS = {"ticket.created": "ticket:created", "ticket.updated": "ticket:updated",
                 "ticket.escalated": "ticket:escalated", "ticket.assigned": "ticket:assigned"}
_LOCK = zlib.crc32(b"support-service:duty:ticket-live-feed")
_POSITION_KEY = "live:ticket-feed:position"
_IDLE_POLL_SECONDS = 5.0   # a safety net; NOTIFY wakes the feed at once


async def push_pending(ctx: AppContext) -> int:
    """Push every ticket event committed since the stored position; returns how many."""
    stored = await ctx.redis.get(_POSITION_KEY)
    pushed = 0
    async with ctx.db.connection() as conn:
        position = int(stored) if stored is not None else await ctx.db.q.last_event_position(conn)
        while True:
            rows = await ctx.db.q.events_of_types_after(conn, after=position, types=list(SOCKET_EVENTS), limit=500)
            for row in rows:
                await _push(ctx, conn, row)
                position = row["position"]
                pushed += 1
            await ctx.redis.set(_POSITION_KEY, position)
            if len(rows) < 500:
                return pushed


async def _push(ctx: AppContext, conn: asyncpg.Connection, event: asyncpg.Record) -> None:
    ticket_row = await ctx.db.q.get_ticket(conn, id=event["entity_id"])
    if ticket_row is None:   # deleted since
        return
    data = {"ticket": present(ctx, dict(ticket_row))}
    name = SOCKET_EVENTS[event["type"]]
    if ticket_row["customer_id"]:
        await ctx.live.emit(name, data, to=customer_room(ticket_row["customer_id"]), namespace=CUSTOMER_NS)
    rooms = [SUPERVISORS] + ([agent_room(ticket_row["agent_id"])] if ticket_row["agent_id"] else [])
    previous = event["payload"].get("from_agent_id")
    if event["type"] == "ticket.assigned" and previous:
        rooms.append(agent_room(previous))
    await ctx.live.emit(name, data, to=rooms, namespace=AGENT_NS)


async def run(ctx: AppContext) -> None:
    """Lead the feed whenever no other replica does; follow the log while leading."""
    while True:
        try:
            await _lead(ctx)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("ticket live feed failed; retrying")
        await asyncio.sleep(_IDLE_POLL_SECONDS)   # wait before trying to lead again


async def _lead(ctx: AppContext) -> None:
    async with ctx.db.connection() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK):
            return
        wake = asyncio.Event()
        listener = lambda *_: wake.set()   # noqa: E731 - asyncpg callback signature
        await conn.add_listener("support_events", listener)
        try:
            while True:
                await push_pending(ctx)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(wake.wait(), _IDLE_POLL_SECONDS)
                wake.clear()
        finally:
            with contextlib.suppress(Exception):
                await conn.remove_listener("support_events", listener)
                await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK)
