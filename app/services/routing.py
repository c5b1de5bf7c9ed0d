"""Chat routing: matching queued chats to agents, accepting, transferring, agent presence.

Every assignment is one Postgres transaction that locks the session and the agent
(``FOR UPDATE SKIP LOCKED``) and moves the agent's ``active_chats`` with it, so no chat goes to
two agents and no agent exceeds ``max_chats``, whichever replicas the parties are on.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg

from app import metrics
from app.auth import Principal, RequestMeta, require_role
from app.context import AppContext
from app.errors import Conflict, Forbidden, InvalidState, NotFound, Unavailable, ValidationFailed
from app.live import AGENT_NS, session_room
from app.security import audit
from app.services import agents as agent_service, departments
from app.services.chat_views import (
    find_session,
    participant_session,
    present_session,
    queue_views,
    session_view,
    session_views,
    summary,
)

log = logging.getLogger(__name__)


def agent_view(row: Any) -> dict:
    """An agent as sockets see it (PROTOCOL.md): ``id`` is the agent's user id."""
    return {
        "id": row["user_id"],
        "display_name": row["display_name"],
        "status": row["status"],
        "active_chats": row["active_chats"],
        "capacity": row["max_chats"],
    }


# ---------------------------------------------------------------- matching


async def drain_queue(ctx: AppContext, department: str) -> int:
    """Give waiting chats of a department to agents with free places, oldest first."""
    assigned = 0
    while True:
        async with ctx.db.transaction() as conn:
            await ctx.db.q.lock_queue(conn, department=department)  # one drain step at a time
            session = await ctx.db.q.next_queued(conn, department=department)
            agent = session and await ctx.db.q.pick_agent(conn, department=department, exclude_agent=None)
            if not agent:
                break
            row, agent_row, view = await _assign(ctx, conn, session, agent)
        await _announce_assignment(ctx, row, agent_row, view)
        assigned += 1
    if assigned:
        queue_changed(ctx, department)
    return assigned


async def _assign(
    ctx: AppContext,
    conn: asyncpg.Connection,
    session: Any,
    agent: Any,
    accepted: tuple[Principal, RequestMeta] | None = None,
) -> tuple[Any, Any, dict]:
    """Give the session to the agent; ``accepted``: an agent's chat:accept, a command recorded
    with its audit row (routing's own assignments are events only)."""
    now = ctx.clock.now()
    row = await ctx.db.q.assign_session(conn, id=session["id"], agent_id=agent["user_id"], now=now)
    agent_row = await ctx.db.q.add_agent_chats(conn, user_id=agent["user_id"], delta=1, now=now)
    payload = {**summary(row), "accepted": accepted is not None}
    if accepted is None:
        await ctx.events.append(conn, "chat.assigned", "chat_session", row["id"], payload)
    else:
        principal, meta = accepted
        await audit.record_change(
            conn,
            ctx.events,
            principal,
            meta,
            "chat.accept",
            "chat_session",
            row["id"],
            {},
            [("chat.assigned", payload)],
        )
    metrics.CHAT_WAIT_SECONDS.observe(max(0.0, (now - (session["queued_at"] or session["started_at"])).total_seconds()))
    return row, agent_row, present_session(ctx, row, agent["display_name"])


async def _announce_assignment(ctx: AppContext, row: Any, agent_row: Any, view: dict) -> None:
    await ctx.live.join(AGENT_NS, agent_row["user_id"], session_room(row["id"]))
    await ctx.live.to_customer(row["customer_id"], "chat:assigned", {"session": view})
    await ctx.live.to_customer(row["customer_id"], "chat:session", view)
    await ctx.live.to_agent(agent_row["user_id"], "chat:assigned", {"session": view})
    await announce_presence(ctx, agent_row)


async def accept(ctx: AppContext, principal: Principal, meta: RequestMeta, ref: Any) -> dict:
    """An agent takes a queued chat by hand; a chat someone else got first is a conflict."""
    require_role(principal, "agent", "supervisor", "admin")
    async with ctx.db.transaction() as conn:
        session = await find_session(ctx, conn, ref, lock=True)
        if session is None:
            raise NotFound("Chat session not found")
        if session["status"] != "queued":
            raise Conflict(
                "Another agent has this chat already"
                if session["status"] == "active"
                else f"The chat is {session['status']}"
            )
        agent = await ctx.db.q.lock_agent_by_user(conn, user_id=principal.user_id)
        if agent is None:
            raise Forbidden("You have no agent profile")
        _within_department(principal, agent, session["department"])
        if agent["active_chats"] >= agent["max_chats"]:
            raise InvalidState("You are at your chat capacity")
        row, agent_row, view = await _assign(ctx, conn, session, agent, accepted=(principal, meta))
    await _announce_assignment(ctx, row, agent_row, view)
    # A drain step running meanwhile skipped this session and agent (locked here) and may have
    # stopped while the agent still had a free place: serve the queue again.
    await drain_queue(ctx, row["department"])
    queue_changed(ctx, row["department"])
    return view


async def transfer(
    ctx: AppContext,
    principal: Principal,
    meta: RequestMeta,
    ref: Any,
    to_agent_id: uuid.UUID | None,
    department: str | None,
) -> dict:
    """Hand an active chat to a named agent or to a free agent of a department."""
    require_role(principal, "agent", "supervisor", "admin")
    if to_agent_id is None and department is None:
        raise ValidationFailed(details={"to_agent_id": ["Give to_agent_id or department."]})
    async with ctx.db.transaction() as conn:
        session = await participant_session(ctx, conn, principal, ref, lock=True)
        if session["status"] != "active":
            raise InvalidState("Only an active chat can be transferred")
        if principal.role == "agent" and session["agent_id"] != principal.user_id:
            raise Forbidden("Only the assigned agent or a supervisor may transfer this chat")
        target = await _transfer_target(ctx, conn, session, to_agent_id, department)
        now = ctx.clock.now()
        row = await ctx.db.q.transfer_session(
            conn, id=session["id"], agent_id=target["user_id"], department=department or session["department"], now=now
        )
        old = await ctx.db.q.add_agent_chats(conn, user_id=session["agent_id"], delta=-1, now=now)
        new = await ctx.db.q.add_agent_chats(conn, user_id=target["user_id"], delta=1, now=now)
        payload = {**summary(row), "from_agent_id": session["agent_id"], "to_agent_id": target["user_id"]}
        await audit.record_change(
            conn,
            ctx.events,
            principal,
            meta,
            "chat.transfer",
            "chat_session",
            row["id"],
            {"from_agent_id": session["agent_id"], "to_agent_id": target["user_id"], "department": row["department"]},
            [("chat.transferred", payload)],
        )
        view = await session_view(ctx, conn, row)
    event = {"session": view, "from_agent_id": session["agent_id"], "to_agent_id": target["user_id"]}
    await ctx.live.to_session(row["id"], "chat:transferred", event)  # the customer and the old agent
    await ctx.live.join(AGENT_NS, target["user_id"], session_room(row["id"]))
    await ctx.live.to_agent(target["user_id"], "chat:transferred", event)  # once, not also via the room
    await ctx.live.leave(AGENT_NS, session["agent_id"], session_room(row["id"]))
    await ctx.live.to_customer(row["customer_id"], "chat:session", view)
    for agent_row in (old, new):
        if agent_row is not None:
            await announce_presence(ctx, agent_row)
    if old is not None:
        await drain_queue(ctx, old["department"])
    return view


async def _transfer_target(
    ctx: AppContext, conn: asyncpg.Connection, session: Any, to_agent_id: uuid.UUID | None, department: str | None
) -> Any:
    if to_agent_id is not None:
        if to_agent_id == session["agent_id"]:
            raise InvalidState("The chat is with that agent already")
        target = await ctx.db.q.lock_agent_by_user(conn, user_id=to_agent_id)
        if target is None:
            raise NotFound("Agent not found")
        if target["status"] == "offline" or not target["is_online"]:
            raise Unavailable(f"{target['display_name']} is not online")
        if target["active_chats"] >= target["max_chats"]:
            raise Unavailable(f"{target['display_name']} has no free chat place")
        return target
    assert department is not None  # transfer() refuses a call naming neither
    await departments.ensure(ctx, conn, department)
    target = await ctx.db.q.pick_agent(conn, department=department, exclude_agent=session["agent_id"])
    if target is None:
        raise Unavailable(f"No agent of {department} is free right now")
    return target


# ---------------------------------------------------------------- presence and status


async def announce_presence(ctx: AppContext, agent_row: Any) -> None:
    """To the agent's department and supervisors: telling every agent of every other agent's
    change costs agents² pushes, and only colleagues and supervisors act on it."""
    await ctx.live.to_agents(
        "presence:updated",
        department=agent_row["department"],
        data={
            "agent_id": agent_row["user_id"],
            "status": agent_row["status"],
            "active_chats": agent_row["active_chats"],
            "capacity": agent_row["max_chats"],
        },
    )
    ctx.queue_notifier.mark_availability(agent_row["department"])  # widgets watching it


async def set_status(ctx: AppContext, principal: Principal, meta: RequestMeta, status: str) -> dict:
    """``agent:status``: online takes chats (and drains the queue), away keeps its chats,
    offline hands its chats back to the head of the queue."""
    agent = await agent_service.set_my_status(ctx, principal, meta, status)
    if status == "offline":
        await requeue_chats_of(ctx, principal.user_id)
    async with ctx.db.connection() as conn:
        row = await ctx.db.q.get_agent_by_user(conn, user_id=principal.user_id)
    await announce_presence(ctx, row)
    if status == "online":
        await drain_queue(ctx, agent["department"])
    return agent_view(row)


async def agent_connected(ctx: AppContext, user_id: uuid.UUID) -> Any:
    async with ctx.db.transaction() as conn:
        row = await ctx.db.q.set_agent_presence(conn, user_id=user_id, is_online=True, now=ctx.clock.now())
    if row is not None:
        await announce_presence(ctx, row)
        if row["status"] == "online":
            await drain_queue(ctx, row["department"])
    return row


async def agent_disconnected(ctx: AppContext, user_id: uuid.UUID) -> None:
    """The last socket of the agent (on any replica) is gone: no new chats from now; the
    grace period before going offline starts (see chat_timers.sweep_lapsed_agents)."""
    if await ctx.live.is_connected(AGENT_NS, user_id):
        return
    async with ctx.db.transaction() as conn:
        row = await ctx.db.q.set_agent_presence(conn, user_id=user_id, is_online=False, now=ctx.clock.now())
    if row is not None:
        await announce_presence(ctx, row)


async def requeue_chats_of(ctx: AppContext, agent_user_id: uuid.UUID) -> list[Any]:
    """Put the agent's active chats back at the head of their queues; both sides are told."""
    moved = []
    async with ctx.db.transaction() as conn:
        for session in await ctx.db.q.open_sessions_of_agent(conn, agent_id=agent_user_id):
            row = await ctx.db.q.requeue_session(conn, id=session["id"], now=ctx.clock.now())
            await ctx.db.q.add_agent_chats(conn, user_id=agent_user_id, delta=-1, now=ctx.clock.now())
            await ctx.events.append(
                conn,
                "chat.queued",
                "chat_session",
                row["id"],
                {**summary(row), "requeued_from_agent_id": agent_user_id},
            )
            moved.append((row, await session_view(ctx, conn, row)))
    for row, view in moved:
        event = {"session": view, "from_agent_id": agent_user_id, "to_agent_id": None}
        await ctx.live.to_session(row["id"], "chat:transferred", event)
        await ctx.live.leave(AGENT_NS, agent_user_id, session_room(row["id"]))
        await ctx.live.to_customer(row["customer_id"], "chat:session", view)
    for department in {row["department"] for row, _ in moved}:
        await drain_queue(ctx, department)
        queue_changed(ctx, department)
    return [row for row, _ in moved]


def _within_department(principal: Principal, agent: Any, department: str) -> None:
    """Agents act within their department; supervisors and admins everywhere (transfer is the
    way across for an agent's chat)."""
    if not principal.sees_all and agent["department"] != department:
        raise Forbidden(f"Agents of {agent['department']} do not work the {department} queue")


async def snapshot(ctx: AppContext, principal: Principal, department: str | None) -> dict:
    """``queue:snapshot``: the waiting chats, the caller's own chats, and the agents' load."""
    require_role(principal, "agent", "supervisor", "admin")
    async with ctx.db.connection() as conn:
        me = await ctx.db.q.get_agent_by_user(conn, user_id=principal.user_id)
        if department is not None and me is not None:
            _within_department(principal, me, department)
        scope = department or (None if principal.sees_all or me is None else me["department"])
        queued = await ctx.db.q.queue_of(conn, department=scope)
        mine = await ctx.db.q.open_sessions_of_agent(conn, agent_id=principal.user_id)
        roster = await ctx.db.q.agents_snapshot(conn, department=scope)
        mine_views = await session_views(ctx, conn, mine)
        queued_views = await queue_views(ctx, conn, queued)
    return {"queued": queued_views, "mine": mine_views, "agents": [agent_view(a) for a in roster]}


# ---------------------------------------------------------------- queue notifications


def queue_changed(ctx: AppContext, department: str) -> None:
    ctx.queue_notifier.mark(department)
