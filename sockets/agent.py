"""The ``/agent`` namespace (PROTOCOL.md "Agent → server")."""

from __future__ import annotations

from typing import Any

import socketio

from app.auth import Principal
from app.context import AppContext
from app.live import AGENT_NS, AGENTS, SUPERVISORS, agent_room, department_room, session_room
from app.schemas import chat as s
from app.services import chat, routing
from sockets import customer
from sockets.common import SocketState, meta, refuse, register

NS = AGENT_NS


async def on_connected(sio: socketio.AsyncServer, ctx: AppContext, principal: Principal, sid: str) -> None:
    async with ctx.db.connection() as conn:
        agent = await ctx.db.q.get_agent_by_user(conn, user_id=principal.user_id)
        if agent is None and principal.role == "agent":
            raise refuse("You have no agent profile; ask a supervisor to create one", "forbidden")
        sessions = await ctx.db.q.open_sessions_of_agent(conn, agent_id=principal.user_id)
    rooms = [agent_room(principal.user_id), AGENTS] + [session_room(r["id"]) for r in sessions]
    if agent is not None:
        rooms.append(department_room(agent["department"]))
    if principal.sees_all:
        rooms.append(SUPERVISORS)
    for room in rooms:
        await sio.enter_room(sid, room, namespace=NS)
    if agent is not None:
        await routing.agent_connected(ctx, principal.user_id)


async def on_disconnected(ctx: AppContext, principal: Principal) -> None:
    await routing.agent_disconnected(ctx, principal.user_id)


async def status(ctx: AppContext, p: Principal, sid: str, d: dict) -> Any:
    return {"agent": await routing.set_status(ctx, p, meta(sid), d["status"])}


async def snapshot(ctx: AppContext, p: Principal, sid: str, d: dict) -> Any:
    return await routing.snapshot(ctx, p, d.get("department"))


async def accept(ctx: AppContext, p: Principal, sid: str, d: dict) -> Any:
    return {"session": await routing.accept(ctx, p, meta(sid), d["session_id"])}


async def transfer(ctx: AppContext, p: Principal, sid: str, d: dict) -> Any:
    return {
        "session": await routing.transfer(ctx, p, meta(sid), d["session_id"], d.get("to_agent_id"), d.get("department"))
    }


async def watch(ctx: AppContext, p: Principal, sid: str, d: dict) -> Any:
    return await chat.watch(ctx, p, d["session_id"], sid)


async def unwatch(ctx: AppContext, p: Principal, sid: str, d: dict) -> Any:
    await chat.unwatch(ctx, p, d["session_id"], sid)


async def note(ctx: AppContext, p: Principal, sid: str, d: dict) -> Any:
    return {"note": await chat.add_note(ctx, p, meta(sid), d["session_id"], d["message"])}


EVENTS = {
    "agent:status": (s.AgentStatusEventSchema(), status),
    "queue:snapshot": (s.QueueSnapshotSchema(), snapshot),
    "chat:accept": (s.SessionRef(), accept),
    "chat:transfer": (s.TransferSchema(), transfer),
    "chat:note": (s.NoteSchema(), note),
    "chat:watch": (s.SessionRef(), watch),
    "chat:unwatch": (s.SessionRef(), unwatch),
    # the same as for customers; the services apply the agent's rights
    "chat:message": (s.ChatMessageSchema(), customer.message),
    "chat:sync": (s.ChatSyncSchema(), customer.sync),
    "chat:typing": (s.ChatTypingSchema(), customer.typing),
    "chat:read": (s.ChatReadSchema(), customer.read),
    "chat:end": (s.SessionRef(), customer.end),
}


def register_all(sio: socketio.AsyncServer, state: SocketState) -> None:
    for event, (schema, handler) in EVENTS.items():
        register(sio, state, NS, event, schema, handler)
